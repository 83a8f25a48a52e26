import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { processIdentity } from '../../src/rundir/runDir';
import { busyMessage, runWriter, WRITER_LOCK_FILE, WRITER_LOCK_LIMIT } from '../../src/rundir/writerLock';

const linux = process.platform === 'linux';
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-writer-'));
const children: ChildProcess[] = [];
after(() => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')));

/** A real process that is not grpo (`sleep`): a script using attach() holds the lock with any command line. */
function liveChild(): ChildProcess {
  const c = spawn('sleep', ['60'], { stdio: 'ignore' });
  children.push(c);
  return c;
}

function writeLock(dir: string, holder: Record<string, unknown>): void {
  fs.writeFileSync(path.join(dir, WRITER_LOCK_FILE), JSON.stringify(holder));
}

test('no writer.lock: no writer', () => {
  assert.deepEqual(runWriter(tmp()), { state: 'none' });
});

test('a live process on this host with the recorded start time holds the run', { skip: !linux && 'start times are read from /proc' }, async () => {
  const child = liveChild();
  const id = processIdentity(child.pid!);
  assert.ok(id, 'the child is visible in /proc');
  const dir = tmp();
  writeLock(dir, { pid: child.pid, host: os.hostname(), proc_start: id.start, since: Date.now() / 1000 });
  const w = runWriter(dir);
  assert.equal(w.state, 'live');
  assert.ok(w.state === 'live');
  assert.equal(w.holder.pid, child.pid);
  assert.equal(busyMessage('shared', w.holder), `GRPO: shared is being written by another process (pid ${child.pid} on ${os.hostname()}); it was not resumed.`);

  // the same pid with another start time: the pid was reused, the recorded holder is gone
  writeLock(dir, { pid: child.pid, host: os.hostname(), proc_start: id.start + 1, since: 1 });
  assert.equal(runWriter(dir).state, 'gone');
  // no start time recorded: nothing proves it is that process
  writeLock(dir, { pid: child.pid, host: os.hostname(), proc_start: null, since: 1 });
  assert.equal(runWriter(dir).state, 'gone');
  // another host: its pids mean nothing here
  writeLock(dir, { pid: child.pid, host: `${os.hostname()}-elsewhere`, proc_start: id.start, since: 1 });
  assert.equal(runWriter(dir).state, 'gone');
  assert.equal(runWriter(dir, `${os.hostname()}-elsewhere`).state, 'live', 'seen from that host, it holds the run');
});

test('a holder that has ended does not hold the run (the kernel released its lock; the file stays)', { skip: !linux && 'start times are read from /proc' }, async () => {
  const child = spawn('sleep', ['0.1'], { stdio: 'ignore' });
  const start = processIdentity(child.pid!)?.start;
  await new Promise((r) => child.on('exit', r));
  const dir = tmp();
  writeLock(dir, { pid: child.pid, host: os.hostname(), proc_start: start ?? 1, since: 1 });
  const w = runWriter(dir);
  assert.equal(w.state, 'gone');
});

test('writer.lock is untrusted: a link, an oversized or non-regular file, or one that names no holder is unreadable, never live', { skip: !linux && 'start times are read from /proc' }, () => {
  const child = liveChild();
  const holder = { pid: child.pid, host: os.hostname(), proc_start: processIdentity(child.pid!)!.start, since: 1 };
  const elsewhere = tmp();
  writeLock(elsewhere, holder);
  assert.equal(runWriter(elsewhere).state, 'live', 'the file the link points to would say live');

  const linked = tmp();
  fs.symlinkSync(path.join(elsewhere, WRITER_LOCK_FILE), path.join(linked, WRITER_LOCK_FILE));
  assert.deepEqual(runWriter(linked), { state: 'unreadable', why: 'writer.lock is a symbolic link' });

  const big = tmp();
  fs.writeFileSync(path.join(big, WRITER_LOCK_FILE), JSON.stringify(holder) + ' '.repeat(WRITER_LOCK_LIMIT));
  const b = runWriter(big);
  assert.equal(b.state, 'unreadable');
  assert.match((b as { why: string }).why, /over its .* limit/);

  const folder = tmp();
  fs.mkdirSync(path.join(folder, WRITER_LOCK_FILE));
  assert.deepEqual(runWriter(folder), { state: 'unreadable', why: 'writer.lock is not a regular file' });

  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['{"pid": 1', /not JSON/],
    [JSON.stringify([holder]), /not an object/],
    [JSON.stringify({ ...holder, pid: -3 }), /'pid'/],
    [JSON.stringify({ ...holder, pid: '12' }), /'pid'/],
    [JSON.stringify({ ...holder, host: 5 }), /'host'/],
    [JSON.stringify({ ...holder, proc_start: 'soon' }), /'proc_start'/],
  ];
  for (const [text, want] of bad) {
    const d = tmp();
    fs.writeFileSync(path.join(d, WRITER_LOCK_FILE), text);
    const w = runWriter(d);
    assert.equal(w.state, 'unreadable', text);
    assert.match((w as { why: string }).why, want);
  }
});
