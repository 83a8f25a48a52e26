/**
 * "GRPO: Set Up Python Environment" without VS Code (src/environment/pythonEnv.ts): real Python, real venvs, real pip,
 * offline against a local wheel folder (the trainer's own wheel built from ./trainer), so nothing downloads
 * torch. The successful set-up reuses a venv layered on the project's .venv (test/fixtures/venv.ts), so pip
 * finds torch and transformers installed and the real import check passes.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, test } from 'node:test';
import { checkInterpreter, readSetupMarker } from '../../src/environment/python';
import { layeredVenv, trainerWheel } from '../fixtures/venv';
import { chooseTorchSource, explainFailure, findBasePython, pipPhase, SetupCancelled, SetupError, setupEnvironment, torchPin, venvPython, type Step } from '../../src/environment/pythonEnv';

const repo = path.resolve(__dirname, '../..');
const trainerDir = path.join(repo, 'trainer');
const projectPython = process.env.GRPO_TEST_PYTHON ?? path.join(repo, '.venv', 'bin', 'python');
const haveVenv = fs.existsSync(projectPython);
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-env-'));
const UNREACHABLE = 'http://127.0.0.1:9/whl/cpu'; // the discard port: nothing listens

let wheels = '';
before(() => {
  if (!haveVenv) return;
  wheels = tmp();
  trainerWheel(projectPython, trainerDir, wheels);
});

test('pip phases from its real output lines', () => {
  assert.equal(pipPhase('Collecting torch==2.11.0 (from -r requirements.txt (line 2))'), 'Collecting torch==2.11.0');
  assert.equal(pipPhase('  Downloading https://download.pytorch.org/whl/cpu/torch-2.11.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl (184.0 MB)'),
    'Downloading torch-2.11.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl (184.0 MB)');
  assert.equal(pipPhase('  Using cached numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.whl.metadata (62 kB)'), 'Using cached numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.whl.metadata');
  assert.equal(pipPhase('Processing /tmp/w/grpo_studio-0.1.0-py3-none-any.whl'), 'Processing grpo_studio-0.1.0-py3-none-any.whl');
  assert.equal(pipPhase('Installing collected packages: mpmath, sympy, networkx, jinja2, fsspec, torch'), 'Installing 6 packages (mpmath, sympy, networkx, jinja2, …)');
  assert.equal(pipPhase('Requirement already satisfied: torch==2.11.0 in ./.venv/lib/python3.11/site-packages'), 'Already installed: torch==2.11.0');
  assert.equal(pipPhase('Successfully installed grpo-studio-0.1.0'), 'Installed');
  assert.equal(pipPhase('  Preparing metadata (pyproject.toml): started'), undefined);
});

test('torch source: CPU index only on Linux without an NVIDIA GPU; the pin comes from requirements.txt', () => {
  const cpu = 'https://download.pytorch.org/whl/cpu';
  assert.equal(chooseTorchSource({ platform: 'linux', nvidiaGpu: false, cpuIndex: cpu }).kind, 'index');
  assert.equal(chooseTorchSource({ platform: 'linux', nvidiaGpu: true, cpuIndex: cpu }).kind, 'pypi');
  assert.equal(chooseTorchSource({ platform: 'linux', nvidiaGpu: false, cpuIndex: '' }).kind, 'pypi');
  assert.equal(chooseTorchSource({ platform: 'darwin', nvidiaGpu: false, cpuIndex: cpu }).kind, 'pypi');
  assert.equal(torchPin(fs.readFileSync(path.join(trainerDir, 'requirements.txt'), 'utf8')), '2.11.0');
  assert.equal(torchPin('torchvision==0.1\n'), undefined);
});

test('failures name the step and what to do: disk full, no network', () => {
  const disk = explainFailure('requirements', 'ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device', '/x');
  assert.match(disk.message, /^install the trainer requirements: the disk is full/);
  assert.match(disk.hint, /Free some space/);
  const net = explainFailure('torch', "WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError(... Failed to establish a new connection: [Errno 111] Connection refused')': /simple/torch/\nERROR: No matching distribution found for torch==2.11.0", '/x');
  assert.match(net.message, /^install torch: no network/);
  assert.match(net.hint, /HTTPS_PROXY/);
});

test('no Python ≥ 3.10: a clear error naming each candidate', async () => {
  const dir = tmp();
  const old = path.join(dir, 'python3.8');
  fs.writeFileSync(old, '#!/bin/sh\necho 3.8.10\n', { mode: 0o755 }); // stands in for an old interpreter: prints its version like the probe does
  await assert.rejects(findBasePython({ names: [old, '/nonexistent/python3'] }), (e: SetupError) => {
    assert.equal(e.step, 'python');
    assert.match(e.message, /3\.8\.10 is too old/);
    assert.match(e.hint, /Install Python 3\.10 or newer/);
    return true;
  });
});

test('a fresh venv whose install fails stays unfinished and is refused; a cancelled pip is killed', { skip: !haveVenv && 'no .venv (run scripts/setup.sh)', timeout: 180_000 }, async () => {
  const target = path.join(tmp(), 'env');
  const req = path.join(tmp(), 'requirements.txt');
  fs.writeFileSync(req, 'grpo-studio==0.1.0\n'); // its torch==2.11.0 is not in the wheel folder
  const steps: Step[] = [];
  await assert.rejects(setupEnvironment({
    target, requirements: req, trainerDir, torch: { kind: 'pypi', why: 'test' }, basePythons: [projectPython],
    pipArgs: ['--no-index', '--find-links', wheels], onProgress: (s) => void (steps.includes(s) || steps.push(s)),
  }), (e: SetupError) => {
    assert.equal(e.step, 'requirements');
    assert.match(e.message, /torch/);
    return true;
  });
  assert.deepEqual(steps, ['python', 'venv', 'requirements']);
  assert.equal(readSetupMarker(venvPython(target))?.complete, false);
  const refused = await checkInterpreter(venvPython(target), trainerDir);
  assert.deepEqual(refused, { ok: false, reason: 'its set-up did not finish (run "GRPO: Set Up Python Environment" again)' });

  // Again on the same venv, cancelled as soon as pip prints: the process tree goes, the venv stays unfinished.
  const abort = new AbortController();
  const t0 = Date.now();
  await assert.rejects(setupEnvironment({
    target, requirements: req, trainerDir, torch: { kind: 'pypi', why: 'test' }, pipArgs: ['--no-index', '--find-links', wheels],
    signal: abort.signal, onOutput: () => abort.abort(),
  }), (e: SetupCancelled) => e instanceof SetupCancelled && e.step === 'requirements');
  assert.ok(Date.now() - t0 < 20_000);
  assert.equal(readSetupMarker(venvPython(target))?.complete, false);
});

test('set-up into an existing venv from a local wheel folder: CPU index unreachable → PyPI with a warning, install, import check, marked complete', { skip: !haveVenv && 'no .venv (run scripts/setup.sh)', timeout: 180_000 }, async () => {
  const target = path.join(tmp(), '.venv');
  layeredVenv(projectPython, target);
  const req = path.join(tmp(), 'requirements.txt');
  fs.writeFileSync(req, `${fs.readFileSync(path.join(trainerDir, 'requirements.txt'), 'utf8')}\ngrpo-studio==0.1.0\n`); // the real pins (torch's included) + the trainer's wheel
  const phases: string[] = [];
  const warnings: string[] = [];
  const r = await setupEnvironment({
    target, requirements: req, trainerDir, torch: { kind: 'index', url: UNREACHABLE, why: 'test' },
    pipArgs: ['--no-index', '--find-links', wheels],
    onProgress: (s, d) => phases.push(`${s}: ${d ?? ''}`), onWarning: (w) => warnings.push(w),
  });
  assert.equal(r.python, venvPython(target));
  assert.match(r.versions, /^3\.\d+\.\d+ 2\.11\.0\S* 5\.17\.0$/);
  assert.match(r.torch, /unreachable/);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /CPU wheel index http:\/\/127\.0\.0\.1:9\/whl\/cpu is not reachable .*installing torch from PyPI/);
  assert.ok(phases.includes('requirements: Already installed: torch==2.11.0'), phases.join('\n'));
  assert.ok(phases.includes('requirements: Installing 1 package (grpo-studio)'), phases.join('\n'));
  assert.equal(phases[phases.length - 1], 'check: ');
  assert.equal(readSetupMarker(r.python)?.complete, true);
  assert.equal((await checkInterpreter(r.python, trainerDir)).ok, true);
});
