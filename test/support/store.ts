/** Real stores for tests, and stores with one method changed, to stand for a database that fails. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteStore } from "../../src/adapters/storage/sqlite/sqlite-store.js";
import type { Store } from "../../src/domain/ports.js";

/**
 * A real SQLite store in a directory of its own, removed when the test ends; closing the store is
 * left to the test (or to the Herald it is given to).
 */
export function tempSqliteStore(t: { after(fn: () => void): void }, prefix: string): Store {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return openSqliteStore(join(dir, "herald.db"));
}

/** `store` with its methods in `changes` replaced; each replacement gets the real method to call. */
export function changedStore(
  store: Store,
  changes: { [K in keyof Store]?: (real: Store[K]) => Store[K] },
): Store {
  const replaced = new Map<PropertyKey, unknown>();
  for (const [name, change] of Object.entries(changes)) {
    const real = (store[name as keyof Store] as (...args: unknown[]) => unknown).bind(store);
    replaced.set(name, (change as (real: unknown) => unknown)(real));
  }
  return new Proxy(store, {
    get(target, property, receiver) {
      return replaced.has(property)
        ? replaced.get(property)
        : Reflect.get(target, property, receiver);
    },
  });
}
