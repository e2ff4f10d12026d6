/** Grouping items (deliveries, mostly) while keeping their order. */

/**
 * Splits `items` into runs of consecutive items that `together` says belong with the run's first
 * (the deliveries of one event, say), keeping their order.
 */
export function consecutiveRuns<T>(
  items: readonly T[],
  together: (first: T, item: T) => boolean,
): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  for (const item of items) {
    if (run.length > 0 && !together(run[0] as T, item)) {
      runs.push(run);
      run = [];
    }
    run.push(item);
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/** Adds `item` to the group of `key` in `groups`, starting the group if it has none. */
export function addToGroup<K, T>(groups: Map<K, T[]>, key: K, item: T): void {
  const group = groups.get(key);
  if (group) group.push(item);
  else groups.set(key, [item]);
}
