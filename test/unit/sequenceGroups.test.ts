/**
 * Sequence-level groups (no `tokens`, no `truncated`), as `python -m grpo import-trl` writes them from TRL's
 * completion tables: they pass the record contract, read from a run directory, and every reader falls back
 * (lengths in characters, no logged per-token scores, so an opened completion is scored on demand).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fromGroup } from '../../src/inspect/docScores';
import { readSampleGroup } from '../../src/rundir/runDir';
import { checkGroupRecord, type GroupRecord } from '../../src/shared/records';
import { completionLength, describeLength, rowValue, sortRows } from '../../src/shared/values';

/** The shape of trl_import.groups_from_parquet's record (its extra fields included). */
const imported = (): GroupRecord => ({
  step: 2, question: 'What is 12 plus 30?', answer: null, prompt: '<|im_start|>user\nWhat is 12 plus 30?<|im_end|>\n<|im_start|>assistant\n',
  completions: [' 42', ' it is 12 + 30 = 42', '', ' 40'], rewards: [1.5, 0.5, 0, 1], advantages: [1.0954, -0.3651, -1.0954, 0.3651],
  reward_functions: { digits: [1, 1, 0, 1], brevity: [0.5, -0.5, 0, 0] }, level: 'sequence',
} as GroupRecord);

test('a sequence-level group passes checkGroupRecord; present per-completion fields are still checked', () => {
  const c = checkGroupRecord(imported());
  assert.ok(c.ok, c.ok ? '' : c.error);
  assert.equal(c.ok && c.value.tokens, undefined);
  assert.deepEqual(checkGroupRecord({ ...imported(), truncated: [false] }), { ok: false, error: "group field 'truncated' has 1 entries for 4 completions" });
  assert.deepEqual(checkGroupRecord({ ...imported(), advantages: [1, 2] }), { ok: false, error: "group field 'advantages' has 2 entries for 4 completions" });
  assert.match((checkGroupRecord({ ...imported(), tokens: 'none' }) as { error: string }).error, /'tokens'/);
});

test('lengths fall back to characters: the length sort, the truncated sort and the described length', () => {
  const g = imported();
  assert.deepEqual(completionLength(g, 1), { n: 19, unit: 'characters' });
  assert.equal(describeLength(completionLength(g, 0)), '3 characters');
  assert.equal(describeLength({ n: 1, unit: 'tokens' }), '1 token');
  assert.deepEqual(sortRows(g, 'length', true), [1, 0, 3, 2]);
  assert.deepEqual(sortRows(g, 'length', false), [2, 0, 3, 1]);
  assert.deepEqual(g.completions.map((_, i) => rowValue(g, i, 'truncated')), [0, 0, 0, 0]);
  assert.deepEqual(sortRows(g, 'advantage', true), [0, 3, 1, 2]);
  // a token-level group still counts tokens (EOS included), not characters
  const t = { text: ['4', '2', '<|im_end|>'], logp: [-1, -1, -1], old_logp: [-1, -1, -1], ref_logp: [-1, -1, -1], kl: [0, 0, 0], advantage: [1, 1, 1], entropy: [1, 1, 1] };
  const tokenLevel = { ...imported(), completions: ['42'], rewards: [1], advantages: [0], truncated: [true], tokens: [t] };
  assert.deepEqual(completionLength(tokenLevel, 0), { n: 3, unit: 'tokens' });
  assert.equal(rowValue(tokenLevel, 0, 'truncated'), 1);
});

test('an opened completion of a sequence-level group has no logged scores (it is scored on demand)', () => {
  const g = imported();
  assert.equal(fromGroup(g, 1, g.completions[1], 'completion 1'), null);
  const t = { text: [' 4', '2'], logp: [-1, -2], old_logp: [-1, -2], ref_logp: [-1, -1], kl: [0, 0.7], advantage: [1, 1], entropy: [1, 1] };
  assert.ok(fromGroup({ ...g, completions: [' 42'], rewards: [1], advantages: [1], truncated: [false], tokens: [t] }, 0, ' 42', 'c'));
});

test('a run directory with an imported group reads it as a valid group', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'grpo-seqgroup-'));
  try {
    const other = { ...imported(), step: 3, completions: ['a', 'b', 'c', 'd'] };
    fs.writeFileSync(path.join(dir, 'samples.jsonl'), [imported(), other].map((g) => JSON.stringify(g)).join('\n') + '\n');
    const r = await readSampleGroup(dir, 2);
    assert.ok(r && r.ok, r && !r.ok ? r.error : 'no group at step 2');
    assert.deepEqual(r.value.completions, imported().completions);
    assert.equal(r.value.truncated, undefined);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
