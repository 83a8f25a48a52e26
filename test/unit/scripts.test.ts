import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

const retrySh = path.resolve(__dirname, '../../scripts/retry.sh');

/** Runs `retry` on a command that fails (exit 7) the first `failures` times it runs, counting its runs in a file. */
function retryFlaky(failures: number, attempts: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-retry-'));
  const count = path.join(dir, 'count');
  const flaky = `n=$(($(cat "${count}" 2>/dev/null || echo 0) + 1)); echo $n > "${count}"; [ $n -gt ${failures} ] || exit 7`;
  const res = spawnSync('bash', ['-c', `set -euo pipefail; source "${retrySh}"; retry bash -c '${flaky}'`], {
    env: { ...process.env, RETRY_ATTEMPTS: String(attempts), RETRY_DELAY: '0' }, encoding: 'utf8',
  });
  const runs = Number(fs.readFileSync(count, 'utf8'));
  fs.rmSync(dir, { recursive: true });
  return { status: res.status, runs, stderr: res.stderr };
}

test('set-up retry: a download that fails twice succeeds on the third try', () => {
  const r = retryFlaky(2, 3);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.runs, 3);
  assert.match(r.stderr, /try 3 of 3/);
});

test('set-up retry: a download that keeps failing gives up after RETRY_ATTEMPTS with its own exit status', () => {
  const r = retryFlaky(10, 3);
  assert.equal(r.runs, 3);
  assert.equal(r.status, 7);
  assert.match(r.stderr, /failed 3 times \(exit 7\); giving up/);
});

test('set-up retry: a command that succeeds runs once', () => {
  const r = retryFlaky(0, 3);
  assert.equal(r.status, 0);
  assert.equal(r.runs, 1);
  assert.equal(r.stderr, '');
});
