import { randomBytes } from "node:crypto";
import type { Clock } from "./clock.js";
import { HeraldError } from "./errors.js";
import type { Store } from "./ports.js";
import { isStrictBase64 } from "./signing.js";
import type { ResolvedSource, SourceRegistry } from "./source-registry.js";
import {
  checkRules,
  checkSourceName,
  defaultSettings,
  isBuiltInSource,
  type Source,
  type SourceInput,
  type SourcePatch,
  type SourceView,
  viewSource,
} from "./sources.js";
import type { VerifierSpec } from "./verifier-specs.js";
import { checkSecret, MASKED_SECRET } from "./webhooks.js";

/** Managing sources through the API. */
export interface SourceService {
  create(input: SourceInput): Promise<SourceView>;
  list(): Promise<SourceView[]>;
  get(name: string): Promise<SourceView>;
  update(name: string, patch: SourcePatch): Promise<SourceView>;
  remove(name: string): Promise<void>;
}

function notFound(name: string): HeraldError {
  return new HeraldError(
    "source_not_found",
    `Source not found: no source is named '${name}'. GET /api/sources lists them.`,
  );
}

/** A fresh secret suited to the scheme: `whsec_`-prefixed base64 for Standard Webhooks, hex otherwise. */
function generateSecret(spec: VerifierSpec): string {
  if (spec.type === "standard-webhooks") return `whsec_${randomBytes(24).toString("base64")}`;
  return randomBytes(32).toString("hex");
}

/** Refuses a secret no sender of the scheme could sign with. */
function checkSecretForm(spec: VerifierSpec, secret: string | undefined) {
  if (
    spec.type === "standard-webhooks" &&
    secret?.startsWith("whsec_") &&
    !isStrictBase64(secret.slice("whsec_".length))
  ) {
    throw new HeraldError(
      "validation_failed",
      "secret starts with whsec_, but what follows is not base64, so no sender could sign with it as Standard Webhooks does. Copy the whole secret the sender shows (whsec_ and its base64), or leave secret out to have one generated.",
      "secret",
    );
  }
}

function checkVerifier(
  spec: VerifierSpec,
  allowUnverified: boolean | undefined,
  secret: string | undefined,
) {
  if (spec.type === "none" && allowUnverified !== true) {
    throw new HeraldError(
      "validation_failed",
      "verifier 'none' accepts webhooks from anyone. If that is really wanted, send allowUnverified: true as well.",
      "allowUnverified",
    );
  }
  if (spec.type === "stripe" && secret === undefined) {
    throw new HeraldError(
      "validation_failed",
      "secret is required for a Stripe source: copy the endpoint's signing secret (whsec_…) from the Stripe dashboard.",
      "secret",
    );
  }
  checkSecretForm(spec, secret);
  if (spec.type === "hmac" && spec.signedContent === "timestamp.body" && !spec.timestampHeader) {
    throw new HeraldError(
      "validation_failed",
      "verifier.timestampHeader is required when verifier.signedContent is 'timestamp.body'.",
      "verifier.timestampHeader",
    );
  }
}

/** Builds the source management use cases. */
export function createSourceService(deps: {
  store: Store;
  clock: Clock;
  registry: SourceRegistry;
  bodyLimitBytes: number;
}): SourceService {
  const { store, clock, registry } = deps;

  const show = (resolved: ResolvedSource, revealSecret = false) =>
    viewSource(resolved.source, {
      builtIn: resolved.builtIn,
      hasSecret: resolved.builtIn
        ? resolved.verifier !== undefined
        : resolved.source.secret !== null,
      revealSecret,
    });

  async function find(name: string): Promise<ResolvedSource> {
    const resolved = await registry.resolve(name);
    if (!resolved) throw notFound(name);
    return resolved;
  }

  return {
    async create(input) {
      checkSourceName(input.name);
      if (isBuiltInSource(input.name) || (await store.getSource(input.name))) {
        throw new HeraldError(
          "conflict",
          `A source named '${input.name}' already exists. Change it with PUT /api/sources/${input.name}, or choose another name.`,
          "name",
        );
      }
      if (input.secret !== undefined) checkSecret(input.secret);
      checkVerifier(input.verifier, input.allowUnverified, input.secret);
      checkRules(input.rules ?? []);
      const now = clock.now();
      const defaults = defaultSettings(deps.bodyLimitBytes);
      const source: Source = {
        name: input.name,
        verifier: input.verifier,
        secret:
          input.verifier.type === "none" ? null : (input.secret ?? generateSecret(input.verifier)),
        rules: input.rules ?? [],
        settings: {
          toleranceSeconds: input.toleranceSeconds ?? defaults.toleranceSeconds,
          maxBodyBytes: input.maxBodyBytes ?? defaults.maxBodyBytes,
          rateLimitPerSecond: input.rateLimitPerSecond ?? null,
        },
        createdAt: now,
        updatedAt: now,
      };
      try {
        await store.insertSource(source);
      } catch (error) {
        if (await store.getSource(input.name)) {
          throw new HeraldError(
            "conflict",
            `A source named '${input.name}' already exists.`,
            "name",
          );
        }
        throw error;
      }
      registry.invalidate(source.name);
      return show(
        {
          source,
          builtIn: false,
          verifier: undefined,
          secretSetting: undefined,
          settings: source.settings,
        },
        true,
      );
    },

    async list() {
      return (await registry.list()).map((resolved) => show(resolved));
    },

    async get(name) {
      return show(await find(name));
    },

    async update(name, requested) {
      // The mask an answer shows stands for the secret as it is, so a source read with GET can be
      // sent back as it is.
      const { secret: sent, ...unmasked } = requested;
      const current = await find(name);
      // Likewise the verifier it shows: sent back unchanged, it changes nothing, built-in or not.
      if (
        unmasked.verifier !== undefined &&
        JSON.stringify(unmasked.verifier) === JSON.stringify(current.source.verifier)
      ) {
        delete unmasked.verifier;
      }
      const patch: SourcePatch =
        sent === MASKED_SECRET || sent === undefined ? unmasked : { ...unmasked, secret: sent };
      if (current.builtIn && (patch.verifier !== undefined || patch.secret !== undefined)) {
        throw new HeraldError(
          "validation_failed",
          `'${name}' is a built-in source: its verifier is fixed and its secret comes from HERALD_INCOMING_SECRET_${name.toUpperCase()}. You can change its rules and limits.`,
          patch.verifier !== undefined ? "verifier" : "secret",
        );
      }
      if (patch.secret !== undefined) checkSecret(patch.secret);
      const verifier = patch.verifier ?? current.source.verifier;
      if (patch.secret !== undefined) checkSecretForm(verifier, patch.secret);
      if (patch.verifier !== undefined) {
        checkVerifier(
          verifier,
          patch.allowUnverified,
          patch.secret ?? current.source.secret ?? undefined,
        );
      }
      if (patch.allowUnverified === false && verifier.type === "none") {
        throw new HeraldError(
          "validation_failed",
          `allowUnverified: false cannot hold while source '${name}' has the verifier 'none', which accepts webhooks from anyone. Send a verifier that checks signatures (and its secret) in the same request, or delete the source.`,
          "allowUnverified",
        );
      }
      if (patch.rules !== undefined) checkRules(patch.rules);
      const settings = current.source.settings;
      const now = clock.now();
      // A source moving from 'none' to a signed scheme without a secret gets one made for it,
      // which this answer shows, once, as the creation of a source does.
      const generated =
        !current.builtIn &&
        verifier.type !== "none" &&
        patch.secret === undefined &&
        current.source.secret === null;
      const next: Source = {
        ...current.source,
        verifier,
        secret: current.builtIn
          ? null
          : verifier.type === "none"
            ? null
            : (patch.secret ?? current.source.secret ?? generateSecret(verifier)),
        rules: patch.rules ?? current.source.rules,
        settings: {
          toleranceSeconds: patch.toleranceSeconds ?? settings.toleranceSeconds,
          maxBodyBytes: patch.maxBodyBytes ?? settings.maxBodyBytes,
          rateLimitPerSecond:
            patch.rateLimitPerSecond === undefined
              ? settings.rateLimitPerSecond
              : patch.rateLimitPerSecond,
        },
        createdAt: current.source.createdAt || now,
        updatedAt: Math.max(now, current.source.updatedAt),
      };
      await store.saveSource(next);
      registry.invalidate(name);
      return show((await registry.resolve(name)) as ResolvedSource, generated);
    },

    async remove(name) {
      if (isBuiltInSource(name)) {
        throw new HeraldError(
          "validation_failed",
          `'${name}' is a built-in source and cannot be deleted. Unset HERALD_INCOMING_SECRET_${name.toUpperCase()} to refuse its webhooks.`,
          "name",
        );
      }
      if (!(await store.deleteSource(name))) throw notFound(name);
      registry.invalidate(name);
    },
  };
}
