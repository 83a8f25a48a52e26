/**
 * The group inspector's reward function columns (issue 26): one column per `reward_funcs` function with its
 * value for each completion (— where it did not apply), and the "Save as reward test" button of a row. Kept
 * apart from ./main.ts, which only places them.
 */
import { fmt } from '../../src/shared/values';
import type { GroupRecord } from '../../src/shared/records';
import { button, el } from '../components';

/** The reward functions of the group, in the record's order (none: the run had one reward). */
export const rewardFunctionNames = (g: GroupRecord): string[] => Object.keys(g.reward_functions ?? {});

export function rewardFunctionHeads(g: GroupRecord): HTMLElement[] {
  return rewardFunctionNames(g).map((name) => el('th', { class: 'reward-fn', 'data-reward-fn': name, title: `what reward function ${name} gave each completion (— : it did not apply, or failed); the reward is their weighted sum` }, name));
}

export function rewardFunctionCells(g: GroupRecord, i: number): HTMLElement[] {
  return rewardFunctionNames(g).map((name) => {
    const v = g.reward_functions?.[name]?.[i];
    return el('td', { class: 'num reward-fn', 'data-reward-fn': name }, v === null || v === undefined ? '—' : fmt(v, 3));
  });
}

/** "Save as reward test": the host asks what reward the completion should get and appends the case. */
export function saveAsTestButton(i: number, onSave: (i: number) => void): HTMLElement {
  return button('Save as reward test', () => onSave(i), { secondary: true, title: 'Save this completion, its question and answer, and the reward each function gave, with the reward it should get, as a reward test case (grpo.rewardTestsFile); "GRPO: Check Reward Tests" runs them' }).element;
}
