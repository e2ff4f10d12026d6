/** What migrating a database's schema found and did, and how that is told, for both stores. */
import { counted } from "../../domain/text.js";

export interface MigrationResult {
  /** The schema's version before. */
  fromVersion: number;
  /** Migrations applied now. */
  applied: number;
  /** The schema's version afterwards, and the latest this release knows. */
  schemaVersion: number;
  releaseVersion: number;
}

/** The result of migrating a schema at `fromVersion` to a release that knows `releaseVersion`. */
export function migrationResult(fromVersion: number, releaseVersion: number): MigrationResult {
  return {
    fromVersion,
    applied: Math.max(0, releaseVersion - fromVersion),
    schemaVersion: Math.max(fromVersion, releaseVersion),
    releaseVersion,
  };
}

/**
 * Words for a schema a newer release has upgraded, or undefined when it is not ahead. An older
 * process keeps working on it while a rolling upgrade replaces it (migrations only add), but its
 * operator should know.
 */
export function schemaAheadNotice(result: MigrationResult): string | undefined {
  const { schemaVersion, releaseVersion } = result;
  if (schemaVersion <= releaseVersion) return undefined;
  return `The database's schema is at version ${schemaVersion}, newer than this release of Herald knows (${releaseVersion}): a newer Herald has upgraded it, and nothing was changed. Older processes keep working during a rolling upgrade; upgrade this one too.`;
}

/** Words for an existing schema this start upgraded, or undefined when there was none to upgrade. */
export function schemaUpgradeNotice(result: MigrationResult): string | undefined {
  const { fromVersion, applied, schemaVersion } = result;
  if (fromVersion === 0 || applied === 0) return undefined;
  return `Upgraded the database's schema from version ${fromVersion} to ${schemaVersion} (${counted(applied, "migration")} applied); what it held is kept.`;
}
