// What the generators of src/shared/generated/ share: reading a trainer module's JSON without the trainer's
// dependencies, and writing the generated file or, with `--check`, failing when the committed one is stale.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** `module.<call>()` as JSON, from trainer/grpo/<module>.py loaded by path: only the standard library is
 * needed, so no torch import and no grpo/__init__ (the extension has it even where no venv exists yet). */
export function trainerJson(module, call) {
  const python = [join(root, '.venv', 'bin', 'python'), 'python3'].find((p) => p === 'python3' || existsSync(p));
  const code = [
    'import importlib.util, json, sys',
    `spec = importlib.util.spec_from_file_location("grpo_${module}", sys.argv[1])`,
    `m = importlib.util.module_from_spec(spec); sys.modules["grpo_${module}"] = m; spec.loader.exec_module(m)`,
    `print(json.dumps(m.${call}()))`,
  ].join('\n');
  return JSON.parse(execFileSync(python, ['-c', code, join(root, 'trainer', 'grpo', `${module}.py`)], { encoding: 'utf8' }));
}

/** Writes `text` to `out`; with `--check` on the command line, exits 1 instead if `out` differs from it. */
export function writeOrCheck(out, text, command, summary) {
  const name = relative(root, out);
  if (process.argv.includes('--check')) {
    if ((existsSync(out) ? readFileSync(out, 'utf8') : '') !== text) {
      console.error(`${name} is stale: run \`${command}\``);
      process.exit(1);
    }
    console.log(`${name} is up to date`);
  } else {
    writeFileSync(out, text);
    console.log(`wrote ${summary} to ${name}`);
  }
}
