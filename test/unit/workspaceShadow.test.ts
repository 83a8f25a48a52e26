/**
 * A folder opened in the editor cannot shadow the trainer's modules: Python starts in the trainer folder
 * with PYTHONSAFEPATH=1, the workspace only appended to sys.path (after installed packages) for user
 * modules, and relative paths in settings passed absolute.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { trainerEnv, workspaceArgs } from '../../src/environment/python';
import { ServeProcess } from '../../src/inspect/serve';
import { TrainerProcess } from '../../src/training/trainerProcess';

const repo = path.resolve(__dirname, '../..');
const trainerDir = path.join(repo, 'trainer');
const python = process.env.GRPO_TEST_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const haveVenv = fs.existsSync(python);

/** A workspace whose grpo/ and torch.py would take over `python -m grpo` if it were on sys.path. */
function poisoned(): string {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-ws-'));
  fs.mkdirSync(path.join(ws, 'grpo'));
  fs.writeFileSync(path.join(ws, 'grpo', '__init__.py'), 'raise SystemExit("SHADOWED grpo")\n');
  fs.writeFileSync(path.join(ws, 'grpo', '__main__.py'), 'raise SystemExit("SHADOWED grpo")\n');
  fs.writeFileSync(path.join(ws, 'torch.py'), 'raise SystemExit("SHADOWED torch")\n');
  return ws;
}

test('relative paths resolve against the workspace; names stay names', () => {
  const ws = poisoned();
  fs.mkdirSync(path.join(ws, 'data'));
  fs.writeFileSync(path.join(ws, 'data', 'train.jsonl'), '');
  const args = workspaceArgs(['-m', 'grpo', 'train', '--run-dir', 'runs/a', '--config', 'c.json', '--set', 'task=data/train.jsonl', '--set', 'model=builtin:tiny', '--set', 'task=arith', '--set', 'beta=0.1'], ws);
  assert.deepEqual(args, ['-m', 'grpo', 'train', '--run-dir', path.join(ws, 'runs/a'), '--config', path.join(ws, 'c.json'), '--set', `task=${path.join(ws, 'data/train.jsonl')}`, '--set', 'model=builtin:tiny', '--set', 'task=arith', '--set', 'beta=0.1']);
  const env = trainerEnv(trainerDir, { PATH: '/usr/bin' }, ws);
  assert.equal(env.PYTHONSAFEPATH, '1');
  assert.equal(env.GRPO_WORKSPACE, ws);
});

test('the trainer started for a poisoned workspace runs the real grpo and reads its relative --config', { skip: !haveVenv && 'no .venv' }, async () => {
  const ws = poisoned();
  fs.writeFileSync(path.join(ws, 'c.json'), JSON.stringify({ beta: -1 }));
  const stderr: string[] = [];
  const code = await new Promise<number | null>((resolve) => {
    TrainerProcess.start(python, ['-m', 'grpo', 'train', '--config', 'c.json', '--run-dir', 'runs/x'], { workspace: ws, trainerDir }, {
      onMessage: () => undefined,
      onProblem: () => undefined,
      onStderr: (l) => stderr.push(l),
      onExit: (c) => resolve(c),
    });
  });
  const err = stderr.join('\n');
  assert.doesNotMatch(err, /SHADOWED/);
  assert.equal(code, 2, err);
  assert.match(err, /'beta'/, 'the workspace config was found and checked by the real trainer');
  assert.equal(fs.existsSync(path.join(ws, 'runs')), false, 'nothing was written');
});

test('serve for a poisoned workspace imports the real torch', { skip: !haveVenv && 'no .venv', timeout: 300_000 }, async () => {
  const ws = poisoned();
  const stderr: string[] = [];
  const s = new ServeProcess(python, path.join(ws, 'no-such-checkpoint'), { trainerDir, workspace: ws, onStderr: (l) => stderr.push(l) });
  await assert.rejects(s.ready, /no such directory/);
  assert.doesNotMatch(stderr.join('\n'), /SHADOWED/);
  s.dispose();
});
