/**
 * Feeds a run's questions.jsonl into an Atlas as the file grows: the run directory's incremental tail
 * (regular files only, never a symlink; at most `chunkBytes` a read), bad lines counted and skipped, a file
 * that shrank (rewritten) read again from the start. Node only, no `vscode`: unit-tested directly.
 */
import { Atlas } from './atlas';
import { questionsTail, type JsonlTail } from '../rundir/runDir';
import type { QuestionsRow } from '../shared/records';

export interface FeedResult {
  /** the atlas changed (rows or bad rows added, or it started over) */
  changed: boolean;
  /** a read stopped at `chunkBytes` or `maxChunks`: call again for the rest */
  more: boolean;
}

export class AtlasFeed {
  atlas = new Atlas();
  /** why questions.jsonl cannot be read (a symlink, not a regular file), or null */
  unreadable: string | null = null;
  private readonly tail: JsonlTail<QuestionsRow>;

  constructor(readonly dir: string, private readonly chunkBytes = 4 * 1024 * 1024) {
    this.tail = questionsTail(dir);
  }

  /** Reads what was appended since the last call: at most `maxChunks` reads of `chunkBytes`. */
  pump(maxChunks = 4): FeedResult {
    let changed = false;
    for (let i = 0; i < maxChunks; i++) {
      const c = this.tail.read(this.chunkBytes);
      if (c.restarted) {
        this.atlas = new Atlas();
        changed = true;
      }
      const fileProblem = c.problems.find((p) => p.line === 0);
      this.unreadable = fileProblem ? fileProblem.error : null;
      const bad = c.problems.filter((p) => p.line > 0).length;
      if (bad) {
        this.atlas.bad(bad);
        changed = true;
      }
      for (const row of c.records) {
        this.atlas.add(row);
        changed = true;
      }
      if (c.consumed === 0 && !bad) return { changed, more: false };
    }
    return { changed, more: true };
  }
}
