/**
 * Finds the source a webhook is sent to, with its verifier built. Built-in sources come from the
 * settings (their secrets from the environment), overlaid by what is stored for them (rules,
 * limits); other sources are stored. Lookups are cached for a second so the ingest path does not
 * read the database per request; changes made in this process apply at once, in others within a second.
 */
import type { Clock } from "./clock.js";
import type { Verifier } from "./incoming.js";
import type { Store } from "./ports.js";
import {
  BUILT_IN_SOURCES,
  defaultSettings,
  isBuiltInSource,
  type Source,
  type SourceSettings,
} from "./sources.js";
import type { VerifierSpec } from "./verifier-specs.js";

/** A source ready to receive. */
export interface ResolvedSource {
  source: Source;
  builtIn: boolean;
  /** Undefined when the source has no secret: it then refuses everything. */
  verifier: Verifier | undefined;
  /** The setting to set when a built-in source has no secret. */
  secretSetting: string | undefined;
  settings: SourceSettings;
}

/** How built-in sources verify, and their secrets from the environment. */
export interface BuiltInSources {
  spec(name: string): VerifierSpec;
  secret(name: string): string | undefined;
  /** Builds a built-in source's verifier from its secret. */
  verifier(name: string, secret: string): Verifier;
}

export interface SourceRegistry {
  resolve(name: string): Promise<ResolvedSource | undefined>;
  /** The cached answer of `resolve`, when it is fresh: `{ value }`, else undefined. */
  cached(name: string): { value: ResolvedSource | undefined } | undefined;
  /** Every source, built-in ones first. */
  list(): Promise<ResolvedSource[]>;
  /** Drops cached lookups after a change. */
  invalidate(name?: string): void;
}

const CACHE_MS = 1000;

/** Creates the registry. `buildVerifier` turns a stored source's spec and secret into a verifier. */
export function createSourceRegistry(deps: {
  store: Store;
  clock: Clock;
  builtIns: BuiltInSources;
  bodyLimitBytes: number;
  buildVerifier(spec: VerifierSpec, secret: string | null): Verifier;
}): SourceRegistry {
  const { store, clock, builtIns } = deps;
  const cache = new Map<string, { at: number; value: ResolvedSource | undefined }>();

  function resolveStored(name: string, stored: Source | undefined): ResolvedSource | undefined {
    if (isBuiltInSource(name)) {
      const secret = builtIns.secret(name);
      const source: Source = stored ?? {
        name,
        verifier: builtIns.spec(name),
        secret: null,
        rules: [],
        settings: defaultSettings(deps.bodyLimitBytes),
        createdAt: 0,
        updatedAt: 0,
      };
      return {
        source: { ...source, verifier: builtIns.spec(name) },
        builtIn: true,
        verifier: secret === undefined ? undefined : builtIns.verifier(name, secret),
        secretSetting: `HERALD_INCOMING_SECRET_${name.toUpperCase()}`,
        settings: source.settings,
      };
    }
    if (!stored) return undefined;
    return {
      source: stored,
      builtIn: false,
      verifier: deps.buildVerifier(stored.verifier, stored.secret),
      secretSetting: undefined,
      settings: stored.settings,
    };
  }

  function cached(name: string) {
    const hit = cache.get(name);
    return hit && clock.now() - hit.at < CACHE_MS ? { value: hit.value } : undefined;
  }

  return {
    cached,

    async resolve(name) {
      const now = clock.now();
      const hit = cached(name);
      if (hit) return hit.value;
      const value = resolveStored(name, await store.getSource(name));
      if (cache.size > 10_000) cache.clear();
      cache.set(name, { at: now, value });
      return value;
    },

    async list() {
      const stored = await store.listSources();
      const byName = new Map(stored.map((source) => [source.name, source]));
      const builtIn = BUILT_IN_SOURCES.map(
        (name) => resolveStored(name, byName.get(name)) as ResolvedSource,
      );
      const others = stored
        .filter((source) => !isBuiltInSource(source.name))
        .map((source) => resolveStored(source.name, source) as ResolvedSource);
      return [...builtIn, ...others];
    },

    invalidate(name) {
      if (name === undefined) cache.clear();
      else cache.delete(name);
    },
  };
}
