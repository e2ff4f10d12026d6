/**
 * Herald benchmark: delivery (triggers in, signed deliveries out to a local receiver) and ingest
 * (signed incoming webhooks), each against a baseline measured in the same run.
 *
 *   npm run bench -- [--runs N] [--only delivery|ingest] [--receiver process|thread]
 *                        [--profile DIR] [--env NAME=VALUE]... [--store sqlite|postgres]
 *
 * --profile DIR writes a CPU profile of every Herald process into DIR; --env adds a Herald setting.
 */
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import {
  type DeliveryResult,
  type IngestResult,
  type MeasureOptions,
  measureDelivery,
  measureIngest,
  type System,
} from "./measure.js";
import {
  DELIVERY_ROWS,
  describeDelivery,
  describeIngest,
  INGEST_ROWS,
  printTable,
  rows,
} from "./report.js";
import { formatNumber } from "./stats.js";
import { ROOT } from "./targets.js";

interface Options extends MeasureOptions {
  runs: number;
  delivery: boolean;
  ingest: boolean;
}

function usage(problem: string): never {
  console.error(
    `${problem}\nUsage: npm run bench -- [--runs N] [--only delivery|ingest] [--receiver process|thread] [--profile DIR] [--env NAME=VALUE]... [--store sqlite|postgres]`,
  );
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: "string", default: "3" },
      only: { type: "string" },
      receiver: { type: "string", default: "process" },
      profile: { type: "string" },
      env: { type: "string", multiple: true, default: [] },
      store: { type: "string", default: "sqlite" },
    },
  });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) usage("--runs must be from 1 to 20.");
  if (values.only !== undefined && !["delivery", "ingest"].includes(values.only)) {
    usage("--only must be delivery or ingest.");
  }
  if (values.store !== "sqlite" && values.store !== "postgres")
    usage("--store must be sqlite or postgres.");
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
    delivery: values.only !== "ingest",
    ingest: values.only !== "delivery",
    receiver: values.receiver,
    herald: {
      profileDir: values.profile === undefined ? undefined : resolve(values.profile),
      store: values.store,
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

/** Herald first in odd runs, the baseline first in even runs, so drift hits both alike. */
function systemsInOrder(run: number): System[] {
  return run % 2 === 1 ? ["herald", "baseline"] : ["baseline", "herald"];
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  build();
  const delivery: Record<System, DeliveryResult[]> = { herald: [], baseline: [] };
  const ingest: Record<System, IngestResult[]> = { herald: [], baseline: [] };
  const busyShares: number[] = [];
  const label = async (run: number, what: string) => {
    const busy = await boxBusyShare(1000);
    busyShares.push(busy);
    return `run ${run}/${options.runs} ${what} (box ${formatNumber(busy * 100)}% busy before)`;
  };
  for (let run = 1; run <= options.runs; run++) {
    for (const system of systemsInOrder(run)) {
      if (options.delivery) {
        const prefix = await label(run, `delivery ${system}`);
        const result = await measureDelivery(system, options);
        delivery[system].push(result);
        console.log(`${prefix}: ${describeDelivery(result)}`);
      }
      if (options.ingest) {
        const prefix = await label(run, `ingest ${system}`);
        const result = await measureIngest(system, options);
        ingest[system].push(result);
        console.log(`${prefix}: ${describeIngest(result)}`);
      }
    }
  }
  printTable(
    [
      ...(options.delivery ? rows("delivery", delivery, DELIVERY_ROWS) : []),
      ...(options.ingest ? rows("ingest", ingest, INGEST_ROWS) : []),
    ],
    { runs: options.runs, receiver: options.receiver, busiest: Math.max(...busyShares) },
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
