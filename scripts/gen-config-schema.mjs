// Regenerates src/shared/generated/configSchema.json from trainer/grpo/config.py (the settings table), so the
// training panel has the schema even when no Python is configured. `--check` fails if the copy is stale.
import { join } from 'node:path';
import { root, trainerJson, writeOrCheck } from './gen-common.mjs';

const schema = trainerJson('config', 'schema').map((s) => ({ ...s, choices: s.choices ?? null, min: s.min ?? null, max: s.max ?? null }));
writeOrCheck(join(root, 'src', 'shared', 'generated', 'configSchema.json'), JSON.stringify(schema, null, 1) + '\n', 'npm run gen:schema', `${schema.length} settings`);
