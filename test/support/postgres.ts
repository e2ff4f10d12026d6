/** A fresh PostgreSQL schema per test, on the server CI provides. Connection failures fail the test. */
import { randomBytes } from "node:crypto";
import pg from "pg";

/** The test server: HERALD_TEST_PG_URL, or the local one CI starts. */
export const TEST_PG_URL =
  process.env.HERALD_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** Creates an empty schema and returns its name and a function that drops it. */
export async function createTestSchema(): Promise<{ schema: string; drop(): Promise<void> }> {
  const schema = `herald_t_${randomBytes(6).toString("hex")}`;
  const client = new pg.Client({ connectionString: TEST_PG_URL });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await client.end();
  }
  return {
    schema,
    async drop() {
      const dropper = new pg.Client({ connectionString: TEST_PG_URL });
      await dropper.connect();
      try {
        await dropper.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await dropper.end();
      }
    },
  };
}

/** The URL of the test server with `search_path` set to `schema`, for processes configured by URL. */
export function urlWithSchema(schema: string): string {
  const url = new URL(TEST_PG_URL);
  url.searchParams.set("options", `-c search_path=${schema}`);
  return url.toString();
}

/**
 * A PostgreSQL role and schema for one test, so that cutting the role's connections touches no
 * other test; dropped when the test ends. Returns an admin connection, the role and its URL.
 */
export async function dedicatedRole(t: { after(fn: () => Promise<void>): void }, prefix: string) {
  const admin = new pg.Client({ connectionString: TEST_PG_URL });
  await admin.connect();
  const role = `${prefix}_${randomBytes(4).toString("hex")}`;
  await admin.query(`CREATE ROLE ${role} LOGIN`);
  await admin.query(`CREATE SCHEMA ${role} AUTHORIZATION ${role}`);
  t.after(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS ${role} CASCADE`);
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  });
  const url = new URL(TEST_PG_URL);
  url.username = role;
  url.searchParams.set("options", `-c search_path=${role}`);
  return { admin, role, url };
}
