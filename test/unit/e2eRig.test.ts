// The end-to-end rig's waiting rules, which decide whether an e2e test can fail: an assertion inside a polled
// function is retried until the time is up, a GiveUp is not, and a dead trainer ends a wait at once.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { giveUp, GiveUp, trainerGone, until } from '../e2e/rig';

test('until: retries what throws, but a GiveUp or a failIf reason ends the wait at once', async () => {
  let tries = 0;
  assert.equal(await until('a value', () => (++tries < 3 ? assert.fail('not yet') : 'v'), 5_000, 1), 'v');
  const t0 = Date.now();
  await assert.rejects(until('never', () => giveUp('the script exited'), 60_000, 10), (e) => e instanceof GiveUp && /the script exited/.test(e.message));
  await assert.rejects(until('never', () => false, 60_000, 10, { failIf: () => 'the trainer died' }), /while waiting for never: the trainer died/);
  assert.ok(Date.now() - t0 < 5_000, 'neither waited for its timeout');
  await assert.rejects(until('never', () => false, 50, 10), /timed out after 0s waiting for never/);
});

test('trainerGone: a failed, finished or stopped run, or a running one whose pid is gone, with its log', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-rig-'));
  const write = (o: object) => fs.writeFileSync(path.join(dir, 'status.json'), JSON.stringify({ protocol: 1, state: 'running', phase: 'sft', pid: process.pid, step: 0, max_steps: 10, ...o }));
  assert.equal(trainerGone(dir), null, 'no status.json yet');
  write({});
  assert.equal(trainerGone(dir), null, 'running, alive');
  fs.writeFileSync(path.join(dir, 'trainer.log'), 'loading\nTraceback: out of memory\n');
  write({ state: 'failed', error: 'out of memory' });
  assert.match(trainerGone(dir) ?? '', /the run is failed: out of memory[^]*Traceback: out of memory/);
  write({ pid: spawnSync(process.execPath, ['-e', '0']).pid });
  assert.match(trainerGone(dir) ?? '', /pid \d+\) is gone while status.json says running/);
});
