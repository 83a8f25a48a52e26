import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deriveGroupKind, groupKind, hasNoSignal, KIND_LABEL, rewardsEqual } from '../../src/shared/groupKind';
import { GROUP_KINDS } from '../../src/shared/records';

test('rewards that differ make a mixed group, whatever `correct` says', () => {
  assert.equal(deriveGroupKind({ rewards: [1, 0, 1], correct: [true, false, true] }), 'mixed');
  assert.equal(deriveGroupKind({ rewards: [0.5, 0.25] }), 'mixed');
  assert.equal(deriveGroupKind({ rewards: [1, 1, 1, 0.999], correct: [true, true, true, true] }), 'mixed');
});

test('equal rewards: all correct, all wrong, or other, from `correct`', () => {
  assert.equal(deriveGroupKind({ rewards: [1, 1, 1], correct: [true, true, true] }), 'all_correct');
  assert.equal(deriveGroupKind({ rewards: [0, 0, 0], correct: [false, false, false] }), 'all_wrong');
  // a reward that ignores the answer (format only): answers differ, rewards do not
  assert.equal(deriveGroupKind({ rewards: [0.2, 0.2], correct: [true, false] }), 'no_signal_other');
  // `correct` decides over the reward's value: a reward of 0 for right answers is still all correct
  assert.equal(deriveGroupKind({ rewards: [0, 0], correct: [true, true] }), 'all_correct');
});

test('equal rewards without `correct` (imported TRL, some sampled groups): ≥ 1 all correct, ≤ 0 all wrong, else other', () => {
  assert.equal(deriveGroupKind({ rewards: [1, 1] }), 'all_correct');
  assert.equal(deriveGroupKind({ rewards: [2.5, 2.5] }), 'all_correct');
  assert.equal(deriveGroupKind({ rewards: [0, 0, 0] }), 'all_wrong');
  assert.equal(deriveGroupKind({ rewards: [-1, -1] }), 'all_wrong');
  assert.equal(deriveGroupKind({ rewards: [0.5, 0.5] }), 'no_signal_other');
  assert.equal(deriveGroupKind({ rewards: [] }), 'no_signal_other');
  // a `correct` list of the wrong length is ignored rather than trusted
  assert.equal(deriveGroupKind({ rewards: [1, 1], correct: [false] }), 'all_correct');
});

test('equal up to rounding counts as equal (std 0: every advantage 0)', () => {
  assert.ok(rewardsEqual([0.1 + 0.2, 0.3]));
  assert.ok(rewardsEqual([1e6, 1e6 + 1e-4]));
  assert.ok(!rewardsEqual([0, 1e-6]));
  assert.equal(deriveGroupKind({ rewards: [0.1 + 0.2, 0.3] }), 'no_signal_other');
});

test("the trainer's `kind` wins; an unknown one is derived instead", () => {
  assert.equal(groupKind({ rewards: [1, 0], kind: 'all_wrong' }), 'all_wrong');
  assert.equal(groupKind({ rewards: [1, 0], kind: 'bogus' }), 'mixed');
  assert.equal(groupKind({ rewards: [0, 0] }), 'all_wrong');
});

test('every kind has a badge, and only mixed carries signal', () => {
  for (const k of GROUP_KINDS) assert.ok(KIND_LABEL[k]);
  assert.deepEqual(GROUP_KINDS.filter(hasNoSignal), ['all_correct', 'all_wrong', 'no_signal_other']);
  assert.match(KIND_LABEL.all_wrong, /no signal/);
});
