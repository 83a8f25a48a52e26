import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { readConfig } from '../../src/rundir/runDir';
import { defaultValues, sanitizeValues } from '../../src/shared/settings';

test("config.json's `history` (what each resume changed) is no setting: readConfig leaves it out", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-config-'));
  const settings = { ...defaultValues(), max_steps: 80 };
  const history = [{ time: 1700000000, resumed_from: 20, changed: { max_steps: { from: 40, to: 80 } } }, { time: 1700000100, resumed_from: 40, changed: {} }];
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...settings, history }));
  const read = readConfig(dir);
  assert.ok(read);
  assert.ok(!('history' in read), 'history is not listed among the settings');
  assert.deepEqual(read, settings);
  assert.deepEqual(sanitizeValues(read).errors, [], 'every key read is a known setting');
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...settings, history: 'garbage' }));
  assert.deepEqual(readConfig(dir), settings, 'whatever history holds');
});
