import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { bestReward, effectiveState, eventsTail, isPidAlive, isResumable, lastSampleQuestion, listCheckpoints, listRuns, listSampleSteps, metricsTail, newRunName, readConfig, readMetrics, readSampleGroup, readStartEval, readStatus, scanLines, startEvalRow, summarizeRuns, processIdentity, trainerAlive, withStartRow } from '../../src/rundir/runDir';
import type { MetricsRow, RunEvent, RunStatus } from '../../src/shared/records';
import { RunSession } from '../../src/training/session';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-rundir-'));
const status = (o: object = {}) => ({ protocol: 1, state: 'running', phase: 'grpo', pid: process.pid, step: 3, max_steps: 10, sft_step: 20, sft_steps: 20, started_at: 1, updated_at: 2, ended_at: null, last_checkpoint: 'checkpoints/step_000000', error: null, ...o });
const row = (step: number, reward = step / 10) => JSON.stringify({ step, time: 1000 + step, 'reward/mean': reward, 'reward/std': 0.1, kl: 0.01 }) + '\n';
/** A pid that surely belonged to a process that has exited. */
const deadPid = () => spawnSync(process.execPath, ['-e', '0']).pid!;

test('metrics tail reads whole lines incrementally; a torn tail is completed on the next read', () => {
  const dir = tmp();
  const file = path.join(dir, 'metrics.jsonl');
  fs.writeFileSync(file, row(1) + row(2) + row(3).slice(0, 15));
  const tail = metricsTail(dir);
  const a = tail.read();
  assert.deepEqual(a.records.map((r) => r.step), [1, 2]);
  assert.equal(a.tornTail, true);
  assert.deepEqual(a.problems, []);
  fs.appendFileSync(file, row(3).slice(15) + 'not json\n' + row(4));
  const b = tail.read();
  assert.deepEqual(b.records.map((r) => r.step), [3, 4]);
  assert.equal(b.problems.length, 1);
  assert.equal(b.problems[0].line, 4, 'line numbers continue across reads');
  assert.deepEqual(tail.read().records, []);
  fs.writeFileSync(file, row(1)); // rewritten shorter: start over
  const c = tail.read();
  assert.equal(c.restarted, true);
  assert.deepEqual(c.records.map((r) => r.step), [1]);
});

test('readMetrics reports bad rows (non-numeric fields) without failing', async () => {
  const dir = tmp();
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), row(1) + '{"step": 2, "kl": "high"}\n' + row(3) + '{"step": 4');
  const { rows, problems } = await readMetrics(dir);
  assert.deepEqual(rows.map((r) => r.step), [1, 3]);
  assert.equal(problems.length, 1);
  assert.match(problems[0].error, /kl/);
});

test('status.json: missing, invalid and valid; a live status whose pid is dead is a crash', () => {
  const dir = tmp();
  assert.equal(readStatus(dir), null);
  fs.writeFileSync(path.join(dir, 'status.json'), '{"state": "running"');
  assert.equal(readStatus(dir)?.ok, false);
  fs.writeFileSync(path.join(dir, 'status.json'), JSON.stringify(status({ state: 'exploded' })));
  const bad = readStatus(dir);
  assert.ok(bad && !bad.ok && /state/.test(bad.error));
  fs.writeFileSync(path.join(dir, 'status.json'), JSON.stringify(status()));
  const ok = readStatus(dir);
  assert.ok(ok?.ok);
  assert.equal(effectiveState(ok.value, () => true), 'running');
  assert.equal(effectiveState(ok.value), 'crashed', 'this pid is alive but not a grpo trainer');
  const dead = { ...ok.value, pid: deadPid() };
  assert.equal(isPidAlive(dead.pid), false);
  assert.equal(effectiveState(dead), 'crashed');
  assert.equal(isResumable('crashed', dead), true);
  assert.equal(isResumable('crashed', { ...dead, last_checkpoint: null }), false);
  assert.equal(effectiveState({ ...dead, state: 'stopped' }), 'stopped');
});

test('checkpoints: complete step_* folders only, in step order', () => {
  const dir = tmp();
  for (const n of ['step_000050', 'step_000000', 'step_000100.tmp', 'notes']) fs.mkdirSync(path.join(dir, 'checkpoints', n), { recursive: true });
  fs.writeFileSync(path.join(dir, 'checkpoints', 'step_000007'), 'a file, not a checkpoint');
  assert.deepEqual(listCheckpoints(dir).map((c) => [c.name, c.step]), [['step_000000', 0], ['step_000050', 50]]);
  assert.deepEqual(listCheckpoints(tmp()), []);
});

test('sample steps are read line by line from samples.jsonl', async () => {
  const dir = tmp();
  const group = (step: number) => JSON.stringify({ step, question: 'say "step": 99', completions: ['a'], step_rewards: [[1]], tokens: [{ text: ['a'] }] }) + '\n';
  fs.writeFileSync(path.join(dir, 'samples.jsonl'), group(10) + group(20));
  assert.deepEqual(await listSampleSteps(dir), [10, 20]);
  assert.deepEqual(await listSampleSteps(tmp()), []);
});

test('listRuns finds run directories with state and best reward, newest first', async () => {
  const runs = tmp();
  const a = path.join(runs, 'a');
  const b = path.join(runs, 'b');
  fs.mkdirSync(a);
  fs.mkdirSync(b);
  fs.mkdirSync(path.join(runs, 'not-a-run'));
  fs.writeFileSync(path.join(a, 'status.json'), JSON.stringify(status({ state: 'stopped', updated_at: 100 })));
  fs.writeFileSync(path.join(a, 'metrics.jsonl'), row(1, 0.2) + row(2, 0.9) + row(3, 0.5));
  fs.writeFileSync(path.join(b, 'status.json'), JSON.stringify(status({ pid: deadPid(), updated_at: 200 })));
  assert.deepEqual(listRuns(runs).map((r) => [r.name, r.state]), [['b', 'crashed'], ['a', 'stopped']]);
  const list = await summarizeRuns(runs);
  assert.deepEqual(list.map((r) => [r.name, r.state, r.bestReward, r.unreadable]), [['b', 'crashed', null, null], ['a', 'stopped', 0.9, null]]);
  fs.appendFileSync(path.join(a, 'metrics.jsonl'), row(4, 1.5));
  assert.equal(await bestReward(a), 1.5, 'the cached best follows appended rows');
  assert.deepEqual(listRuns(path.join(runs, 'missing')), []);
});

test('hostile run folders: a /dev/zero symlink, a newline-free 50 MB samples.jsonl and a 100,000-step run list within 2 s', async () => {
  const runs = tmp();
  const mk = (name: string) => {
    const d = path.join(runs, name);
    fs.mkdirSync(d);
    return d;
  };
  const zero = mk('zero');
  fs.symlinkSync('/dev/zero', path.join(zero, 'status.json'));
  fs.writeFileSync(path.join(zero, 'config.json'), '{}');
  const wide = mk('wide');
  fs.writeFileSync(path.join(wide, 'status.json'), JSON.stringify(status({ state: 'stopped' })));
  fs.writeFileSync(path.join(wide, 'samples.jsonl'), Buffer.alloc(50 * 1024 * 1024, 0x61));
  const long = mk('long');
  fs.writeFileSync(path.join(long, 'status.json'), JSON.stringify(status({ state: 'finished', step: 100_000 })));
  const fields = Object.fromEntries(Array.from({ length: 24 }, (_, i) => [`metric/${i}`, 0.123456789 * i]));
  const lines: string[] = [];
  for (let s = 1; s <= 100_000; s++) lines.push(JSON.stringify({ step: s, time: 1e9 + s, 'reward/mean': s === 77_777 ? 2.5 : (s % 100) / 100, ...fields }));
  fs.writeFileSync(path.join(long, 'metrics.jsonl'), lines.join('\n') + '\n');
  try {
    // the event loop keeps turning while the listing reads (what keeps the window responsive)
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const t0 = performance.now();
    const list = await summarizeRuns(runs);
    const ms = performance.now() - t0;
    clearInterval(timer);
    assert.ok(ms < 2000, `listed in ${ms.toFixed(0)} ms`);
    const by = Object.fromEntries(list.map((r) => [r.name, r]));
    assert.deepEqual(Object.keys(by).sort(), ['long', 'wide', 'zero']);
    assert.equal(by.zero.unreadable, 'status.json is a symbolic link');
    assert.match(by.wide.unreadable ?? '', /samples\.jsonl has a line longer than 16 MB/);
    assert.equal(by.long.unreadable, null);
    assert.equal(by.long.bestReward, 2.5);
    assert.ok(ticks > 0 || ms < 50, 'the listing yielded to the event loop');
    // the other readers refuse the same files without reading them
    assert.match((readStatus(zero) as { error: string }).error, /unreadable: status.json is a symbolic link/);
    assert.deepEqual(await listSampleSteps(wide), []);
    assert.equal(await readSampleGroup(wide, 1), null);
    const m = await readMetrics(long);
    assert.equal(m.rows.length, 100_000);
    assert.equal(m.capped, null);
    const capped = await readMetrics(long, 1024 * 1024);
    assert.ok(capped.capped && capped.capped.read <= 1024 * 1024 && capped.rows.length > 0, 'past the cap the reader says so');
  } finally {
    fs.rmSync(runs, { recursive: true, force: true });
  }
});

test('status.json and config.json: only regular files of bounded size are read', () => {
  const dir = tmp();
  fs.writeFileSync(path.join(dir, 'status.json'), JSON.stringify(status({ error: 'x'.repeat(2 * 1024 * 1024) })));
  assert.match((readStatus(dir) as { error: string }).error, /over its 1 MB limit/);
  fs.mkdirSync(path.join(dir, 'config.json'));
  assert.equal(readConfig(dir), null);
  const outside = path.join(tmp(), 'config.json');
  fs.writeFileSync(outside, '{"a": 1}');
  const other = tmp();
  fs.symlinkSync(outside, path.join(other, 'config.json'));
  assert.equal(readConfig(other), null, 'a symlink out of the run directory is not followed');
  fs.writeFileSync(path.join(other, 'status.json'), '');
  fs.rmSync(path.join(other, 'status.json'));
  spawnSync('mkfifo', [path.join(other, 'status.json')]);
  assert.match((readStatus(other) as { error: string }).error, /not a regular file/, 'a FIFO neither blocks nor is read');
});

test('run names sort by time and carry a safe slug of the task', () => {
  const d = new Date(2025, 10, 24, 9, 5, 7);
  assert.equal(newRunName('arith', d), '20251124-090507-arith');
  assert.equal(newRunName('/data/My Set (v2).jsonl', d), '20251124-090507-My-Set-v2-');
});

test('a logged group is read by step (the last one if a resumed run logged the step twice), validated', async () => {
  const dir = tmp();
  const t = { text: ['3'], logp: [-1], old_logp: [-1], ref_logp: [-1], kl: [0], advantage: [0.5], entropy: [1] };
  const group = (step: number, answer: string) => JSON.stringify({ step, question: '1+2', answer, prompt: '1+2\n', completions: ['3', '3'], rewards: [1, 1], advantages: [0, 0], truncated: [false, false], tokens: [t, t] }) + '\n';
  fs.writeFileSync(path.join(dir, 'samples.jsonl'), group(10, 'first') + group(20, '3') + group(10, 'again') + '{"step": 30, "question": 1}\n');
  const r10 = await readSampleGroup(dir, 10);
  assert.ok(r10?.ok && r10.value.answer === 'again');
  assert.ok((await readSampleGroup(dir, 20))?.ok);
  assert.equal(await readSampleGroup(dir, 5), null);
  const bad = await readSampleGroup(dir, 30);
  assert.ok(bad && !bad.ok && /'question'/.test(bad.error));
  assert.equal(await readSampleGroup(tmp(), 10), null);
  assert.equal(lastSampleQuestion(dir), '1+2', 'the last line with a question (the very last has none)');
  fs.appendFileSync(path.join(dir, 'samples.jsonl'), group(40, '3').replace('"1+2"', '"(3+1)*3 \\"q\\""'));
  assert.equal(lastSampleQuestion(dir), '(3+1)*3 "q"');
});

test('a re-attached session follows the groups logged after it attached, from samples.jsonl\'s new lines only', async () => {
  const dir = tmp();
  const t = { text: ['3'], logp: [-1], old_logp: [-1], ref_logp: [-1], kl: [0], advantage: [0.5], entropy: [1] };
  const group = (step: number) => JSON.stringify({ step, question: '1+2', answer: '3', prompt: '1+2\n', completions: ['3', '3'], rewards: [1, 1], advantages: [0, 0], truncated: [false, false], tokens: [t, t] }) + '\n';
  fs.writeFileSync(path.join(dir, 'status.json'), JSON.stringify(status({ pid: deadPid(), state: 'stopped' })));
  const samples = path.join(dir, 'samples.jsonl');
  fs.writeFileSync(samples, group(1) + group(10) + group(20).slice(0, 40)); // history, and a line being written
  const seen: number[] = [];
  const s = RunSession.attach(dir, { onChange: (c) => c.kind === 'group' && seen.push(c.group.step!), pollMs: 20 });
  try {
    const newest = () => s.latestGroup?.step ?? null;
    assert.equal(newest(), null, 'the history is not read: the Runs view lists it');
    fs.appendFileSync(samples, group(20).slice(40) + group(30) + '{"step": 40}\n');
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(seen, [30], 'the torn line it attached in the middle of, and an invalid group, are skipped');
    assert.equal(newest(), 30);
  } finally {
    s.dispose();
  }
});

test('a status.json pid is re-attached to and signalled only if it is still that trainer (host, start time, grpo)', { skip: process.platform !== 'linux' }, async () => {
  // two live processes: one whose command line says grpo (a stand-in trainer), one that does not
  const trainerLike = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', 'grpo']);
  const foreign = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
  try {
    await new Promise((r) => setTimeout(r, 200));
    const t = processIdentity(trainerLike.pid!)!;
    const f = processIdentity(foreign.pid!)!;
    assert.ok(t && f && /grpo/.test(t.cmdline));
    const mine = status({ pid: trainerLike.pid, host: os.hostname(), proc_start: t.start, token: 'a1' }) as RunStatus;
    assert.equal(trainerAlive(mine), true);
    assert.equal(effectiveState(mine), 'running');
    assert.equal(trainerAlive({ ...mine, proc_start: t.start - 1 }), false, 'a later process with the same pid');
    assert.equal(trainerAlive({ ...mine, host: 'elsewhere' }), false, 'another machine');
    assert.equal(trainerAlive({ ...mine, proc_start: undefined }), false, 'no start time to check');
    assert.equal(trainerAlive({ ...mine, pid: foreign.pid!, proc_start: f.start }), false, 'not a grpo process');

    // Stop on an attached run whose status.json names a foreign process: nothing is signalled
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'status.json'), JSON.stringify(status({ pid: foreign.pid, host: os.hostname(), proc_start: f.start, token: 'b2' })));
    const s = RunSession.attach(dir, { onChange: () => {}, pollMs: 60_000 });
    assert.equal(s.control('stop'), 'unavailable');
    s.dispose();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(foreign.exitCode, null);
    assert.equal(foreign.signalCode, null, 'the foreign process was not signalled');
  } finally {
    trainerLike.kill('SIGKILL');
    foreign.kill('SIGKILL');
  }
});

test('scanLines: lines across chunk boundaries, over-long lines skipped, resumable from where it stopped', async () => {
  const dir = tmp();
  const file = path.join(dir, 'x.jsonl');
  const big = 'y'.repeat(3 * 1024 * 1024);
  fs.writeFileSync(file, `a\n${'b'.repeat(1024 * 1024 + 10)}\n${big}\nc\ntorn`);
  const seen: [number, number][] = [];
  const scan = await scanLines(file, 2 * 1024 * 1024, (line, n) => seen.push([n, line.length]));
  assert.deepEqual(seen, [[1, 1], [2, 1024 * 1024 + 10], [4, 1]]);
  assert.deepEqual(scan?.overlong, [3]);
  assert.equal(scan?.read, fs.statSync(file).size - 'torn'.length, 'read ends after the last whole line');
  fs.appendFileSync(file, '\nd\n');
  const more: string[] = [];
  await scanLines(file, 100, (line) => more.push(line.toString()), { start: scan!.read });
  assert.deepEqual(more, ['torn', 'd']);
});

test('the start\'s evaluation (the step-0 eval event) becomes the first metrics row; later evaluations do not', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-start-'));
  assert.equal(await readStartEval(dir), null, 'no events.jsonl: no start point, no error');
  const ev = (step: number, acc: number) => ({ kind: 'eval', time: 100 + step, step, accuracy: acc, n: 400, samples: 16, pass_at_k: { '1': 0.6, '16': 0.98 }, maj_at_k: { '1': 0.6, '16': 0.88 } });
  const lines = [{ kind: 'phase', time: 1, step: 0, phase: 'sft' }, ev(0, 0.5175), { kind: 'phase', time: 2, step: 0, phase: 'grpo', sft_accuracy: 0.5175 }, ev(25, 0.88)];
  fs.writeFileSync(path.join(dir, 'events.jsonl'), 'not json\n' + lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const start = await readStartEval(dir);
  assert.deepEqual(start, { step: 0, time: 100, 'eval/accuracy': 0.5175, 'eval/pass@1': 0.6, 'eval/pass@16': 0.98, 'eval/maj@1': 0.6, 'eval/maj@16': 0.88 });
  assert.equal(startEvalRow(ev(25, 0.88) as RunEvent), null);
  const rows: MetricsRow[] = [{ step: 1, 'reward/mean': 0.6 }, { step: 2, 'reward/mean': 0.7 }];
  assert.deepEqual(withStartRow(rows, start).map((r) => r.step), [0, 1, 2]);
  assert.deepEqual(withStartRow(withStartRow(rows, start), start).map((r) => r.step), [0, 1, 2], 'never twice');
  assert.equal(withStartRow(rows, null), rows);
});

test('lines that are not objects ([1,2,3], 42, null, an array holding a record) are skipped by every run-directory reader', async () => {
  const dir = tmp();
  const junk = ['[1,2,3]', '42', 'null', '"text"', '[{"step": 1, "reward/mean": 99, "question": "planted"}]'].join('\n') + '\n';
  fs.writeFileSync(path.join(dir, 'metrics.jsonl'), row(1, 0.5) + junk + row(2, 0.25));
  const m = await readMetrics(dir);
  assert.deepEqual(m.rows.map((r) => r.step), [1, 2]);
  assert.equal(m.problems.length, 5);
  assert.ok(m.problems.every((p) => /not an object/.test(p.error)), JSON.stringify(m.problems));
  assert.deepEqual(metricsTail(dir).read().records.map((r) => r.step), [1, 2]);
  assert.equal(await bestReward(dir), 0.5, 'a reward inside an array is no record');

  const ev = { kind: 'eval', time: 100, step: 0, accuracy: 0.5, n: 4 };
  fs.writeFileSync(path.join(dir, 'events.jsonl'), junk + JSON.stringify(ev) + '\n');
  const events = eventsTail(dir).read();
  assert.deepEqual(events.records.map((e) => e.kind), ['eval']);
  assert.equal(events.problems.length, 5);
  assert.equal((await readStartEval(dir))?.['eval/accuracy'], 0.5);

  const t = { text: ['3'], logp: [-1], old_logp: [-1], ref_logp: [-1], kl: [0], advantage: [0.5], entropy: [1] };
  const group = JSON.stringify({ step: 1, question: '1+2', answer: '3', prompt: '1+2\n', completions: ['3', '3'], rewards: [1, 1], advantages: [0, 0], truncated: [false, false], tokens: [t, t] }) + '\n';
  fs.writeFileSync(path.join(dir, 'samples.jsonl'), group + junk);
  assert.deepEqual(await listSampleSteps(dir), [1], 'the array line that names step 1 is not a second group');
  const g = await readSampleGroup(dir, 1);
  assert.ok(g?.ok && g.value.question === '1+2', JSON.stringify(g));
  assert.equal(lastSampleQuestion(dir), '1+2');
});
