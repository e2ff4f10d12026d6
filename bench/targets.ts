/** The systems under test: Herald as child processes, the baselines and the durable floors. */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { request } from "undici";
import {
  freePort,
  Helper,
  makeTempDir,
  procStatFields,
  removeTempDir,
  spawnNode,
  waitForHttp,
} from "./children.js";
import type { DispatcherSettings } from "./trigger-dispatch.js";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const TRIGGER_PATH = "/api/webhooks/trigger";
export const INGEST_PATH = "/api/incoming-webhooks/custom";
export const API_KEY = `bench_${randomBytes(16).toString("hex")}`;
export const INCOMING_SECRET = `whsec_${randomBytes(16).toString("hex")}`;

/** A running system under test. */
export interface Target {
  origin: string;
  /** CPU time its processes have used, in ms; undefined where it cannot be read. */
  cpuMs(): number | undefined;
  /** CPU time of their main threads, in ms; undefined where it cannot be read. */
  mainThreadCpuMs(): number | undefined;
  /**
   * CPU time of the database server it uses, in ms: Herald on PostgreSQL has part of its work done
   * there. Undefined for a system without a server, or one that is not on this machine.
   */
  databaseCpuMs?(): number | undefined;
  /**
   * How Herald's delivery workers have taken deliveries so far, summed over its processes and read
   * from their /metrics: by their own process's commit, handed over by an api process, or claimed.
   */
  takenVia?(): Promise<Record<string, number>>;
  /** With several processes, each one's role and CPU time in ms (undefined where unreadable). */
  cpuMsByProcess?(): Array<[string, number | undefined]>;
  stop(): Promise<void>;
}

/** A running dispatcher (Herald or the baseline) and the signing secret of each receiver path. */
export interface DeliveryTarget extends Target {
  secrets: Record<string, string>;
}

/** The bench's environment without Herald settings, so only the ones set here apply. */
function environmentWithoutHeraldSettings(): NodeJS.ProcessEnv {
  const kept = Object.entries(process.env).filter(
    ([name]) => !/^(HERALD_|DATABASE_URL$|PORT$|HOST$|LOG_LEVEL$)/.test(name),
  );
  return Object.fromEntries(kept);
}

/** How Herald is started beyond the bench's own settings, the same for every layout. */
export interface HeraldSettings {
  /** Writes a CPU profile of each Herald process into this dir. */
  profileDir: string | undefined;
  /** Extra settings, applied last (HERALD_ROLE excepted: the layout sets it). */
  env: Record<string, string>;
}

/** Which database Herald uses and how many processes share it. */
export interface HeraldLayout {
  /** `postgres`: each Herald gets a fresh schema on the PostgreSQL server at HERALD_TEST_PG_URL. */
  store: "sqlite" | "postgres";
  /** Worker processes beside one api process; 0: one process does both (HERALD_ROLE=all). */
  workers: number;
}

export type HeraldLaunch = HeraldSettings & HeraldLayout;

const PG_URL = process.env.HERALD_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** A fresh PostgreSQL schema for one Herald, and how to drop it. */
async function freshSchema(): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = `herald_bench_${randomBytes(6).toString("hex")}`;
  const run = async (sql: string) => {
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await run(`CREATE SCHEMA ${schema}`);
  const url = new URL(PG_URL);
  url.searchParams.set("options", `-c search_path=${schema}`);
  return { url: url.toString(), drop: () => run(`DROP SCHEMA IF EXISTS ${schema} CASCADE`) };
}

/**
 * Reads the CPU time of the PostgreSQL server at PG_URL, in ms: the postmaster's own and that of
 * its children, those running (backends, WAL writer, checkpointer) and those that have ended. Found
 * through the backend of a connection, which must be a `postgres` process of this machine; a
 * server elsewhere (or in a container) gives a reader of undefined.
 */
async function postgresServerCpu(): Promise<() => number | undefined> {
  const unknown = () => undefined;
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  let postmaster: number | undefined;
  try {
    const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    const backend = rows[0]?.pid;
    // Read while the connection holds the backend; a pid of another process here says nothing.
    if (backend !== undefined && readComm(backend) === "postgres") {
      postmaster = Number(procStatFields(`/proc/${backend}/stat`)?.[1]);
    }
  } finally {
    await client.end();
  }
  if (postmaster === undefined || !Number.isInteger(postmaster)) return unknown;
  const server = postmaster;
  return () => {
    const own = procStatFields(`/proc/${server}/stat`);
    if (!own) return undefined;
    // utime, stime, and the cutime and cstime of children that have ended, in 1/100 s.
    let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const fields = procStatFields(`/proc/${entry}/stat`);
      if (fields && Number(fields[1]) === server) ticks += Number(fields[11]) + Number(fields[12]);
    }
    return ticks * 10;
  };
}

function readComm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return undefined;
  }
}

type Role = "all" | "api" | "worker";

/** Profiles of one bench invocation share a stamp, so a later invocation never overwrites them. */
const PROFILE_STAMP = new Date().toISOString().replace(/[-:]|\.\d+/g, "");
let profileSerial = 0;

/** One Herald process on a free port with a fresh data dir, once its /healthz answers 200. */
async function startHeraldProcess(
  launch: HeraldLaunch,
  role: Role,
  databaseUrl: string | undefined,
): Promise<Target> {
  const port = await freePort();
  const dataDir = makeTempDir("herald-bench-");
  const { profileDir } = launch;
  // A directory per process, named by role, so the api's and the workers' profiles can be told
  // apart; inside it, one profile per thread (main, SQLite writer, delivery threads).
  const processDir = `herald-${PROFILE_STAMP}-${String(++profileSerial).padStart(3, "0")}-${launch.store}-${role}`;
  const nodeArgs = profileDir
    ? ["--cpu-prof", `--cpu-prof-dir=${join(profileDir, processDir)}`]
    : [];
  const herald = spawnNode([...nodeArgs, "dist/main.js"], ROOT, {
    ...environmentWithoutHeraldSettings(),
    PORT: String(port),
    HOST: "127.0.0.1",
    HERALD_DATA_DIR: dataDir,
    HERALD_API_KEY: API_KEY,
    HERALD_ALLOW_PRIVATE_TARGETS: "true",
    HERALD_INCOMING_SECRET_CUSTOM: INCOMING_SECRET,
    LOG_LEVEL: "warn",
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...launch.env,
    HERALD_ROLE: role,
  });
  const origin = `http://127.0.0.1:${port}`;
  const stop = async () => {
    const code = await herald.stop(20_000);
    removeTempDir(dataDir);
    if (code !== 0) {
      console.warn(
        `Herald (${role}) exited with code ${code}; its last output:\n${herald.outputTail()}`,
      );
    }
  };
  try {
    await waitForHttp(`${origin}/healthz`, 15_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    origin,
    cpuMs: () => herald.cpuMs(),
    mainThreadCpuMs: () => herald.mainThreadCpuMs(),
    stop,
  };
}

/**
 * Starts Herald in `launch`'s layout: `node dist/main.js` with a fresh data dir (and, on
 * PostgreSQL, a fresh schema shared by all its processes). With workers, the api process starts
 * first, so it alone runs the migrations; triggers go to it, and the CPU is that of all processes.
 */
export async function startHerald(launch: HeraldLaunch): Promise<Target> {
  if (launch.workers > 0 && launch.store !== "postgres") {
    throw new Error("Separate worker processes need PostgreSQL.");
  }
  const database = launch.store === "postgres" ? await freshSchema() : undefined;
  const databaseCpuMs = database ? await postgresServerCpu() : undefined;
  const roles: Role[] =
    launch.workers > 0 ? ["api", ...Array<Role>(launch.workers).fill("worker")] : ["all"];
  const processes: Target[] = [];
  const stop = async () => {
    await Promise.all(processes.map((p) => p.stop()));
    await database?.drop();
  };
  try {
    for (const role of roles) processes.push(await startHeraldProcess(launch, role, database?.url));
  } catch (error) {
    await stop();
    throw error;
  }
  /** The sum of `read` over the processes; undefined if any cannot be read. */
  const sum = (read: (p: Target) => number | undefined) => () => {
    let total = 0;
    for (const p of processes) {
      const ms = read(p);
      if (ms === undefined) return undefined;
      total += ms;
    }
    return total;
  };
  const takenVia = async () => {
    const taken: Record<string, number> = {};
    for (const { origin } of processes) {
      const text = await (await request(`${origin}/metrics`)).body.text();
      for (const [, via, count] of text.matchAll(
        /^herald_deliveries_taken_total\{via="([a-z_]+)"\} (\d+)$/gm,
      )) {
        taken[via as string] = (taken[via as string] ?? 0) + Number(count);
      }
    }
    return taken;
  };
  return {
    origin: processes[0]!.origin,
    takenVia,
    ...(processes.length > 1
      ? {
          cpuMsByProcess: () =>
            processes.map((p, i): [string, number | undefined] => [roles[i] as string, p.cpuMs()]),
        }
      : {}),
    cpuMs: sum((p) => p.cpuMs()),
    mainThreadCpuMs: sum((p) => p.mainThreadCpuMs()),
    ...(databaseCpuMs ? { databaseCpuMs } : {}),
    stop,
  };
}

async function registerWebhook(origin: string, name: string, url: string): Promise<string> {
  const response = await request(`${origin}/api/webhooks`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ name, url, events: ["user.created"] }),
  });
  const text = await response.body.text();
  if (response.statusCode !== 201) {
    throw new Error(`registering ${url} answered ${response.statusCode}: ${text}`);
  }
  return (JSON.parse(text) as { webhook: { secret: string } }).webhook.secret;
}

/** Starts Herald and registers one user.created webhook per URL of `urls`. */
export async function startHeraldWithWebhooks(
  urls: string[],
  launch: HeraldLaunch,
): Promise<DeliveryTarget> {
  const herald = await startHerald(launch);
  try {
    const secrets: Record<string, string> = {};
    for (const [i, url] of urls.entries()) {
      secrets[new URL(url).pathname] = await registerWebhook(herald.origin, `bench-${i}`, url);
    }
    return { ...herald, secrets };
  } catch (error) {
    await herald.stop();
    throw error;
  }
}

/**
 * Starts a reference dispatcher (`script`: the naive baseline or the durable outbox), sending to
 * `urls` with `connections` per origin; `dir` is the durable outbox's database directory.
 */
async function startDispatcher(
  script: string,
  urls: string[],
  connections: number,
  dir?: string,
): Promise<DeliveryTarget> {
  const targets = urls.map((url) => ({ url, secret: randomBytes(24).toString("base64url") }));
  const settings: DispatcherSettings = {
    apiKey: API_KEY,
    triggerPath: TRIGGER_PATH,
    connections,
    targets,
    ...(dir ? { dir } : {}),
  };
  const { helper, url } = await Helper.start(script, "process", [JSON.stringify(settings)]);
  const secrets = Object.fromEntries(targets.map((t) => [new URL(t.url).pathname, t.secret]));
  return {
    origin: url,
    secrets,
    cpuMs: () => helper.cpuMs(),
    mainThreadCpuMs: () => helper.mainThreadCpuMs(),
    stop: async () => {
      await helper.stop();
      // The helper removes it as it exits; this covers one stopped by force.
      if (dir) removeTempDir(dir);
    },
  };
}

/** Starts the naive dispatcher baseline, sending to `urls` with `connections` per origin. */
export function startBaselineDispatcher(urls: string[], connections: number) {
  return startDispatcher("./dispatcher.ts", urls, connections);
}

/** Starts the delivery floor (durable-outbox.ts) on a database of its own. */
export function startDurableOutbox(urls: string[], connections: number) {
  return startDispatcher(
    "./durable-outbox.ts",
    urls,
    connections,
    makeTempDir("herald-bench-outbox-"),
  );
}

/** Starts the bare node:http server that only answers 200. */
export async function startSink(): Promise<Target> {
  const { helper, url } = await Helper.start("./sink.ts", "process");
  return {
    origin: url,
    cpuMs: () => helper.cpuMs(),
    mainThreadCpuMs: () => helper.mainThreadCpuMs(),
    stop: () => helper.stop(),
  };
}

/** Starts the ingest floor (durable-sink.ts) on a database of its own. */
export async function startDurableFloor(): Promise<Target> {
  const dir = makeTempDir("herald-bench-floor-");
  const { helper, url } = await Helper.start("./durable-sink.ts", "process", [
    INCOMING_SECRET,
    dir,
  ]);
  return {
    origin: url,
    cpuMs: () => helper.cpuMs(),
    mainThreadCpuMs: () => helper.mainThreadCpuMs(),
    stop: async () => {
      await helper.stop();
      // The helper removes it as it exits; this covers one stopped by force.
      removeTempDir(dir);
    },
  };
}
