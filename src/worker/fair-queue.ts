/**
 * Deliveries waiting for a slot, one first-in-first-out line per webhook, served in turn: a webhook
 * with a long backlog, or one whose receiver hangs, cannot hold back the others.
 */
import { Queue } from "./queue.js";

export class FairQueue<T> {
  private readonly lines = new Map<string, Queue<T>>();
  /** Keys that have items, in the order of their next turn. */
  private readonly turns = new Queue<string>();
  private size = 0;

  constructor(private readonly keyOf: (item: T) => string) {}

  get length(): number {
    return this.size;
  }

  /** Items waiting under `key`. */
  lengthOf(key: string): number {
    return this.lines.get(key)?.length ?? 0;
  }

  /** Keys that have items waiting. */
  keys(): IterableIterator<string> {
    return this.lines.keys();
  }

  push(item: T): void {
    const key = this.keyOf(item);
    let line = this.lines.get(key);
    if (!line) {
      line = new Queue<T>();
      this.lines.set(key, line);
      this.turns.push(key);
    }
    line.push(item);
    this.size++;
  }

  /**
   * The oldest item of the next key in turn that `allowed` accepts; that key then goes to the back
   * of the turns. Undefined when no key with items is allowed.
   */
  take(allowed: (key: string) => boolean): T | undefined {
    for (let tries = this.turns.length; tries > 0; tries--) {
      const key = this.turns.take();
      const line = this.lines.get(key) as Queue<T>;
      if (!allowed(key)) {
        this.turns.push(key);
        continue;
      }
      const item = line.take();
      this.size--;
      if (line.length > 0) this.turns.push(key);
      else this.lines.delete(key);
      return item;
    }
    return undefined;
  }

  /** Takes every item waiting under `key`, oldest first. */
  takeAllOf(key: string): T[] {
    const line = this.lines.get(key);
    if (!line) return [];
    this.lines.delete(key);
    this.size -= line.length;
    const others = this.turns.takeAll().filter((turn) => turn !== key);
    for (const turn of others) this.turns.push(turn);
    return line.takeAll();
  }

  takeAll(): T[] {
    const all: T[] = [];
    for (const line of this.lines.values()) all.push(...line.takeAll());
    this.lines.clear();
    this.turns.takeAll();
    this.size = 0;
    return all;
  }
}
