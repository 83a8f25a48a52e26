// Regenerates src/generated/configSchema.json from trainer/grpo/config.py (the settings table), so the
// training panel has the schema even when no Python is configured. `--check` fails if the copy is stale.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'src', 'generated', 'configSchema.json');
const python = [join(root, '.venv', 'bin', 'python'), 'python3'].find((p) => p === 'python3' || existsSync(p));
// Load config.py by path: it only needs the standard library, so no torch import and no grpo/__init__.
const code = [
  'import importlib.util, json, sys',
  'spec = importlib.util.spec_from_file_location("grpo_config", sys.argv[1])',
  'm = importlib.util.module_from_spec(spec); sys.modules["grpo_config"] = m; spec.loader.exec_module(m)',
  'print(json.dumps(m.schema(), indent=1))',
].join('\n');
const text = execFileSync(python, ['-c', code, join(root, 'trainer', 'grpo', 'config.py')], { encoding: 'utf8' });
const schema = JSON.parse(text).map((s) => ({ ...s, choices: s.choices ?? null, min: s.min ?? null, max: s.max ?? null }));
const json = JSON.stringify(schema, null, 1) + '\n';
if (process.argv.includes('--check')) {
  const current = existsSync(out) ? readFileSync(out, 'utf8') : '';
  if (current !== json) {
    console.error('src/generated/configSchema.json is stale: run `npm run gen:schema`');
    process.exit(1);
  }
  console.log('configSchema.json is up to date');
} else {
  writeFileSync(out, json);
  console.log(`wrote ${schema.length} settings to ${out}`);
}
