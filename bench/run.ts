/**
 * Herald benchmark: delivery (triggers in, signed deliveries out to a local receiver) and ingest
 * (signed incoming webhooks), each against a baseline measured in the same run. Each also measures
 * a durable floor, the least a durable system does on this machine (durable-outbox.ts: the
 * baseline dispatcher plus SQLite group commits; durable-sink.ts: a verified, deduplicated, durable
 * receiver), so Herald can be read against what durability alone costs.
 *
 *   npm run bench -- [--runs N] [--only delivery|ingest] [--clients N] [--receiver process|thread]
 *                        [--profile DIR] [--env NAME=VALUE]... [--store sqlite|postgres|both]
 *                        [--steady RATE]
 *
 * --store picks Herald's database: sqlite (default); postgres (delivery with 1 process, and with 1
 * api process + 1 or 2 worker processes; ingest with 1 process); or both: the PostgreSQL layouts
 * beside SQLite in the same run.
 * --profile DIR writes CPU profiles of every Herald process into DIR, a folder per process and a
 * profile per thread; --env adds a Herald setting. --steady RATE adds a delivery measurement below
 * saturation: RATE triggers a second, steadily, for each system delivery measures; it reports the
 * CPU per delivery (all threads, and the main thread alone) and the latency at that load.
 */
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import {
  BASELINE,
  CLIENTS,
  type DeliveryResult,
  DURABLE_FLOOR,
  type IngestResult,
  type MeasureOptions,
  measureDelivery,
  measureIngest,
  measureSteady,
  PG_API_1_WORKER,
  PG_API_2_WORKERS,
  PG_ONE_PROCESS,
  SQLITE,
  type SteadyResult,
  type System,
} from "./measure.js";
import {
  DELIVERY_ROWS,
  describeDelivery,
  describeIngest,
  describeSteady,
  INGEST_ROWS,
  printTable,
  rows,
  STEADY_ROWS,
} from "./report.js";
import { formatNumber } from "./stats.js";
import { ROOT } from "./targets.js";

interface Options extends MeasureOptions {
  runs: number;
  /** Triggers a second of the steady measurement; 0 skips it. */
  steady: number;
  /** Systems measured for delivery, and for ingest; empty when that measure is skipped. */
  delivery: System[];
  ingest: System[];
}

type Store = "sqlite" | "postgres" | "both";

/** Systems per --store, in column order. */
const SYSTEMS: Record<Store, { delivery: System[]; ingest: System[] }> = {
  sqlite: {
    delivery: [SQLITE, DURABLE_FLOOR, BASELINE],
    ingest: [SQLITE, DURABLE_FLOOR, BASELINE],
  },
  postgres: {
    delivery: [PG_ONE_PROCESS, PG_API_1_WORKER, PG_API_2_WORKERS, DURABLE_FLOOR, BASELINE],
    ingest: [PG_ONE_PROCESS, DURABLE_FLOOR, BASELINE],
  },
  both: {
    delivery: [SQLITE, PG_ONE_PROCESS, PG_API_1_WORKER, PG_API_2_WORKERS, DURABLE_FLOOR, BASELINE],
    ingest: [SQLITE, PG_ONE_PROCESS, DURABLE_FLOOR, BASELINE],
  },
};

function usage(problem: string): never {
  console.error(
    `${problem}\nUsage: npm run bench -- [--runs N] [--only delivery|ingest] [--clients N] [--receiver process|thread] [--profile DIR] [--env NAME=VALUE]... [--store sqlite|postgres|both] [--steady RATE]`,
  );
  process.exit(2);
}

/** The command line, read strictly: an unknown option or a missing value throws. */
function readArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      runs: { type: "string", default: "3" },
      clients: { type: "string", default: String(CLIENTS) },
      only: { type: "string" },
      receiver: { type: "string", default: "process" },
      profile: { type: "string" },
      env: { type: "string", multiple: true, default: [] },
      store: { type: "string", default: "sqlite" },
      steady: { type: "string", default: "0" },
    },
  });
}

function parseOptions(argv: string[]): Options {
  if (argv.includes("--help") || argv.includes("-h")) usage("Herald benchmark.");
  let parsed: ReturnType<typeof readArgs>;
  try {
    parsed = readArgs(argv);
  } catch (error) {
    usage(error instanceof Error ? error.message : String(error));
  }
  const { values } = parsed;
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) usage("--runs must be from 1 to 20.");
  const clients = Number(values.clients);
  if (!Number.isInteger(clients) || clients < 1 || clients > 1024) {
    usage("--clients must be from 1 to 1024.");
  }
  if (values.only !== undefined && !["delivery", "ingest"].includes(values.only)) {
    usage("--only must be delivery or ingest.");
  }
  const steady = Number(values.steady);
  if (!Number.isInteger(steady) || steady < 0 || steady > 5000) {
    usage("--steady must be a rate from 1 to 5000 triggers a second (0 skips it).");
  }
  const store = values.store as Store;
  if (!Object.hasOwn(SYSTEMS, store)) usage("--store must be sqlite, postgres or both.");
  if (values.receiver !== "process" && values.receiver !== "thread") {
    usage("--receiver must be process or thread.");
  }
  const env: Record<string, string> = {};
  for (const setting of values.env) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(setting);
    if (!match) usage(`--env ${setting} is not NAME=VALUE.`);
    const [, name = "", value = ""] = match;
    env[name] = value;
  }
  return {
    runs,
    steady,
    delivery: values.only !== "ingest" ? SYSTEMS[store].delivery : [],
    ingest: values.only !== "delivery" ? SYSTEMS[store].ingest : [],
    receiver: values.receiver,
    clients,
    herald: {
      profileDir: values.profile === undefined ? undefined : resolve(values.profile),
      env,
    },
  };
}

/** Share of the box's CPU busy over `ms`, from the kernel's per-core counters. */
async function boxBusyShare(ms: number): Promise<number> {
  const sample = () => {
    let busy = 0;
    let all = 0;
    for (const { times } of cpus()) {
      busy += times.user + times.nice + times.sys + times.irq;
      all += times.user + times.nice + times.sys + times.irq + times.idle;
    }
    return { busy, all };
  };
  const before = sample();
  await sleep(ms);
  const after = sample();
  return (after.busy - before.busy) / Math.max(after.all - before.all, 1);
}

function build(): void {
  const result = spawnSync("npm", ["run", "build"], { cwd: ROOT, encoding: "utf8" });
  if (result.status !== 0) {
    throw new Error(`npm run build failed:\n${result.stdout}${result.stderr}`);
  }
}

/** `systems` rotated by one place per run, so drift hits them all alike. */
function inOrder(systems: System[], run: number): System[] {
  const first = (run - 1) % systems.length;
  return [...systems.slice(first), ...systems.slice(0, first)];
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  build();
  const delivery = new Map(options.delivery.map((s): [System, DeliveryResult[]] => [s, []]));
  const ingest = new Map(options.ingest.map((s): [System, IngestResult[]] => [s, []]));
  const steadySystems = options.steady > 0 ? options.delivery : [];
  const steady = new Map(steadySystems.map((s): [System, SteadyResult[]] => [s, []]));
  const busyShares: number[] = [];
  const label = async (run: number, what: string) => {
    const busy = await boxBusyShare(1000);
    busyShares.push(busy);
    return `run ${run}/${options.runs} ${what} (box ${formatNumber(busy * 100)}% busy before)`;
  };
  for (let run = 1; run <= options.runs; run++) {
    for (const system of inOrder(options.delivery, run)) {
      const prefix = await label(run, `delivery ${system.name}`);
      const result = await measureDelivery(system, options);
      delivery.get(system)!.push(result);
      console.log(`${prefix}: ${describeDelivery(result)}`);
    }
    for (const system of inOrder(steadySystems, run)) {
      const prefix = await label(run, `steady ${system.name}`);
      const result = await measureSteady(system, options, options.steady);
      steady.get(system)!.push(result);
      console.log(`${prefix}: ${describeSteady(result)}`);
    }
    for (const system of inOrder(options.ingest, run)) {
      const prefix = await label(run, `ingest ${system.name}`);
      const result = await measureIngest(system, options);
      ingest.get(system)!.push(result);
      console.log(`${prefix}: ${describeIngest(result)}`);
    }
  }
  // Columns in a fixed order whatever the run order: delivery's systems, with those measured for
  // ingest alone before the baseline.
  const columns = [
    ...new Set([
      ...options.delivery.filter((s) => s !== BASELINE),
      ...options.ingest,
      ...options.delivery,
    ]),
  ];
  printTable(
    [
      ...(options.delivery.length > 0 ? rows("delivery", delivery, DELIVERY_ROWS) : []),
      ...(steadySystems.length > 0 ? rows("steady", steady, STEADY_ROWS) : []),
      ...(options.ingest.length > 0 ? rows("ingest", ingest, INGEST_ROWS) : []),
    ],
    columns,
    {
      runs: options.runs,
      clients: options.clients,
      receiver: options.receiver,
      steady: options.steady,
      busiest: Math.max(...busyShares),
    },
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
