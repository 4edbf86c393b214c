/**
 * Which cell a chat button acts on.
 *
 * Pressing a button inside the chat's output makes the chat's own cell active (the notebook moves the active
 * cell on mousedown, before the click), so "the active cell" at click time is useless as a target. Instead the
 * extension remembers recently active cells and acts on the most recent one that is *not* the chat's cell:
 * the cell the user was working in before turning to the chat.
 */
export class ActiveHistory<T> {
  private readonly recent: T[] = [];

  constructor(private readonly limit = 16) {}

  /** Record that `item` became active. */
  note(item: T | null | undefined): void {
    if (item === null || item === undefined) return;
    const i = this.recent.indexOf(item);
    if (i !== -1) this.recent.splice(i, 1);
    this.recent.push(item);
    if (this.recent.length > this.limit) this.recent.shift();
  }

  /** The most recently active item other than `exclude` for which `alive` holds (e.g. still in the notebook). */
  pick(exclude: T, alive: (item: T) => boolean): T | null {
    for (let i = this.recent.length - 1; i >= 0; i--) {
      const item = this.recent[i];
      if (item !== exclude && alive(item)) return item;
    }
    return null;
  }
}
