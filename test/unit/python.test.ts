import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { checkInterpreter, findInterpreter, listCandidates, resolveSettingPath, setupCommand } from '../../src/environment/python';

const repo = path.resolve(__dirname, '../..');
const trainerDir = path.join(repo, 'trainer');
const venvPython = process.env.GRPO_TEST_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const haveVenv = fs.existsSync(venvPython);
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-py-'));

/** A workspace whose .venv is a real environment (a symlink to the repo's venv folder). */
function workspaceWithVenv(): string {
  const ws = tmp();
  fs.symlinkSync(path.dirname(path.dirname(venvPython)), path.join(ws, '.venv'));
  return ws;
}

test('candidate order: Python extension, workspace .venv, python3 on PATH; duplicates once', async () => {
  const ws = workspaceWithVenv();
  const bin = tmp();
  fs.symlinkSync('/usr/bin/python3', path.join(bin, 'python3'));
  const c = await listCandidates({ workspaceFolders: [ws], pythonExtension: async () => '/opt/py/bin/python', envPath: bin });
  assert.deepEqual(c.map((x) => x.source), ['python-extension', 'workspace-venv', 'path']);
  assert.equal(c[1].python, path.join(ws, '.venv', 'bin', 'python'));
  assert.equal(c[2].python, path.join(bin, 'python3'));
  const noExt = await listCandidates({ workspaceFolders: [ws], pythonExtension: async () => { throw new Error('not activated'); }, envPath: '' });
  assert.deepEqual(noExt.map((x) => x.source), ['workspace-venv', 'path']);
  const dup = await listCandidates({ workspaceFolders: [ws], pythonExtension: async () => path.join(ws, '.venv', 'bin', 'python'), envPath: '' });
  assert.deepEqual(dup.map((x) => x.source), ['python-extension', 'path']);
});

test('grpo.pythonPath wins alone, resolved against the workspace', async () => {
  assert.equal(resolveSettingPath('${workspaceFolder}/.venv/bin/python', ['/ws']), '/ws/.venv/bin/python');
  assert.equal(resolveSettingPath('env/bin/python', ['/ws']), '/ws/env/bin/python');
  assert.equal(resolveSettingPath('~/py/bin/python', []), path.join(os.homedir(), 'py/bin/python'));
  const c = await listCandidates({ setting: 'python3', workspaceFolders: [workspaceWithVenv()], pythonExtension: async () => '/x', envPath: '/usr/bin' });
  assert.deepEqual(c, [{ python: '/usr/bin/python3', source: 'setting' }]);
});

test('a missing interpreter is rejected as not found', async () => {
  const r = await checkInterpreter('/nonexistent/python', trainerDir);
  assert.deepEqual(r, { ok: false, reason: 'not found' });
});

test('an interpreter without torch is rejected with the module it lacks', async (t) => {
  const bare = '/usr/bin/python3';
  const probe = await checkInterpreter(bare, trainerDir);
  if (probe.ok) return t.skip('the system python3 has torch installed');
  assert.match(probe.reason, /cannot import (torch|transformers)/);
});

test('the project venv is accepted (imports torch, transformers and the bundled grpo package)', { skip: !haveVenv && 'no .venv (run scripts/setup.sh)' }, async () => {
  const r = await checkInterpreter(venvPython, trainerDir);
  assert.ok(r.ok, JSON.stringify(r));
  assert.match(r.versions, /^3\.\d+\.\d+ \d+\.\d+/);
  // Without the trainer folder on PYTHONPATH, `import grpo` fails: the check really covers it.
  const noGrpo = await checkInterpreter(venvPython, tmp());
  assert.deepEqual(noGrpo, { ok: false, reason: 'cannot import grpo' });
});

test('discovery falls through failing candidates to the first working one, else explains how to set one up', { skip: !haveVenv && 'no .venv' }, async () => {
  const ws = workspaceWithVenv();
  const found = await findInterpreter({ workspaceFolders: [ws], pythonExtension: async () => '/nonexistent/python', envPath: '' }, trainerDir);
  assert.ok(found.ok);
  assert.equal(found.source, 'workspace-venv');
  const none = await findInterpreter({ workspaceFolders: [tmp()], envPath: '' , setting: '/nonexistent/python' }, trainerDir);
  assert.ok(!none.ok);
  assert.equal(none.tried.length, 1, 'an explicit setting that fails is not silently replaced');
  assert.match(none.message, /\/nonexistent\/python \(grpo\.pythonPath\): not found/);
  assert.ok(none.message.includes(setupCommand(trainerDir)));
  assert.equal(setupCommand('/ext/trainer'), 'python3 -m venv .venv && .venv/bin/pip install -r /ext/trainer/requirements.txt');
  assert.equal(setupCommand("/my ext/trainer"), "python3 -m venv .venv && .venv/bin/pip install -r '/my ext/trainer/requirements.txt'");
});

test('in a remote window with nothing set, the message says a local User grpo.pythonPath is ignored there', async () => {
  const ws = tmp();
  const remote = await findInterpreter({ workspaceFolders: [ws], envPath: '', remoteName: 'ssh-remote' }, trainerDir);
  assert.equal(remote.ok, false);
  assert.match(!remote.ok ? remote.message : '', /remote window \(ssh-remote\): a grpo\.pythonPath in your local User settings is ignored here/);
  assert.match(!remote.ok ? remote.message : '', /GRPO: Set Up Python Environment/);
  const local = await findInterpreter({ workspaceFolders: [ws], envPath: '' }, trainerDir);
  assert.doesNotMatch(!local.ok ? local.message : '', /remote window/);
});
