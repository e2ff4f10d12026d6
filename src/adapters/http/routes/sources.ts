/** Source management: `/api/sources…`, behind the API key. */
import type { FastifyInstance } from "fastify";
import { HeraldError } from "../../../domain/errors.js";
import type { SourceService } from "../../../domain/source-service.js";
import { LARGEST_BODY_BYTES, type SourceInput, type SourcePatch } from "../../../domain/sources.js";
import {
  normalizeVerifierSpec,
  VERIFIER_TYPES,
  type VerifierSpecInput,
} from "../../../domain/verifier-specs.js";

const headerName = {
  type: "string",
  minLength: 1,
  maxLength: 100,
  pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
} as const;
const verifier = {
  type: "object",
  required: ["type"],
  additionalProperties: false,
  properties: {
    type: { type: "string", enum: VERIFIER_TYPES },
    algorithm: { type: "string", enum: ["sha256", "sha384", "sha512"] },
    encoding: { type: "string", enum: ["hex", "base64"] },
    header: headerName,
    prefix: { type: "string", maxLength: 50 },
    signedContent: { type: "string", enum: ["body", "timestamp.body"] },
    timestampHeader: headerName,
  },
} as const;
const condition = {
  anyOf: [
    { type: ["string", "number", "boolean", "null"] },
    {
      type: "object",
      additionalProperties: false,
      required: ["in"],
      properties: {
        in: {
          type: "array",
          maxItems: 100,
          items: { type: ["string", "number", "boolean", "null"] },
        },
      },
    },
    {
      type: "object",
      additionalProperties: false,
      required: ["exists"],
      properties: { exists: { type: "boolean" } },
    },
  ],
} as const;
const rules = {
  type: "array",
  maxItems: 100,
  items: {
    type: "object",
    required: ["emit"],
    additionalProperties: false,
    properties: {
      event: {
        anyOf: [
          { type: "string", minLength: 1, maxLength: 200 },
          { type: "array", maxItems: 50, items: { type: "string", minLength: 1, maxLength: 200 } },
        ],
      },
      where: { type: "object", maxProperties: 20, additionalProperties: condition },
      emit: { type: "string", minLength: 1, maxLength: 200 },
      data: { type: "string", minLength: 1, maxLength: 200 },
    },
  },
} as const;
const settings = {
  secret: { type: ["string", "null"], minLength: 1, maxLength: 512 },
  rules,
  toleranceSeconds: { type: "integer", minimum: 1, maximum: 86_400 },
  maxBodyBytes: { type: "integer", minimum: 1, maximum: LARGEST_BODY_BYTES },
  rateLimitPerSecond: { type: ["integer", "null"], minimum: 1, maximum: 1_000_000 },
  allowUnverified: { type: "boolean" },
} as const;
/**
 * Fields an answer shows that a request cannot set: taken and ignored, so that a source read with
 * GET can be sent back as it is. Any other field Herald does not know is a 400 (a misspelt `rule`
 * would otherwise leave a source without its rules, without a word).
 */
const shownOnly = {
  url: {},
  builtIn: {},
  verified: {},
  createdAt: {},
  updatedAt: {},
} as const;
const SHOWN_ONLY = Object.keys(shownOnly);
const nameParams = {
  type: "object",
  required: ["name"],
  properties: { name: { type: "string" } },
} as const;

type SourceBody = Omit<SourceInput, "verifier"> & { verifier: VerifierSpecInput };
type PatchBody = Omit<SourcePatch, "verifier"> & { verifier?: VerifierSpecInput; name?: string };

function withoutShownOnly<T extends object>(body: T): T {
  const kept = { ...body } as Record<string, unknown>;
  for (const field of SHOWN_ONLY) delete kept[field];
  // An answer shows null for a source without a secret: sent back, it leaves the secret as it is.
  if (kept.secret === null) delete kept.secret;
  return kept as T;
}

/** Registers the source routes on `app` (mounted at /api/sources). */
export function registerSourceRoutes(app: FastifyInstance, service: SourceService): void {
  app.get("/", async () => {
    const sources = await service.list();
    return { success: true, count: sources.length, sources };
  });

  app.post<{ Body: SourceBody }>(
    "/",
    {
      schema: {
        body: {
          type: "object",
          required: ["name", "verifier"],
          additionalProperties: false,
          properties: {
            // 63 at most, as the name check says; the schema only bounds what is read.
            name: { type: "string", minLength: 1, maxLength: 63 },
            verifier,
            ...settings,
            ...shownOnly,
          },
        },
      },
    },
    async (request, reply) => {
      const source = await service.create({
        ...withoutShownOnly(request.body),
        verifier: normalizeVerifierSpec(request.body.verifier),
      });
      return reply
        .status(201)
        .send({ success: true, message: "Source created successfully", source });
    },
  );

  app.get<{ Params: { name: string } }>(
    "/:name",
    { schema: { params: nameParams } },
    async (request) => ({
      success: true,
      source: await service.get(request.params.name),
    }),
  );

  app.put<{ Params: { name: string }; Body: PatchBody }>(
    "/:name",
    {
      schema: {
        params: nameParams,
        body: {
          type: "object",
          minProperties: 1,
          additionalProperties: false,
          properties: { name: { type: "string" }, verifier, ...settings, ...shownOnly },
        },
      },
    },
    async (request) => {
      const { verifier: spec, name, ...rest } = withoutShownOnly(request.body);
      if (name !== undefined && name !== request.params.name) {
        throw new HeraldError(
          "validation_failed",
          `A source's name cannot change: it is part of the URL its sender posts to. Create a source named '${name}' and delete '${request.params.name}' instead.`,
          "name",
        );
      }
      if (spec === undefined && Object.keys(rest).length === 0) {
        throw new HeraldError(
          "validation_failed",
          "The request body has no field that can be changed: send at least one of verifier, secret, rules, toleranceSeconds, maxBodyBytes, rateLimitPerSecond.",
        );
      }
      const patch: SourcePatch =
        spec === undefined ? rest : { ...rest, verifier: normalizeVerifierSpec(spec) };
      return {
        success: true,
        message: "Source updated successfully",
        source: await service.update(request.params.name, patch),
      };
    },
  );

  app.delete<{ Params: { name: string } }>(
    "/:name",
    { schema: { params: nameParams } },
    async (request) => {
      await service.remove(request.params.name);
      return { success: true, message: "Source deleted successfully" };
    },
  );
}
