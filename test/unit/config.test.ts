import assert from "node:assert/strict";
import { resolve } from "node:path";
import { describe, test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config.js";
import { DEFAULT_RETRY_SCHEDULE } from "../../src/domain/retry-policy.js";

/** The problems loadConfig refuses `env` for; fails the test when it accepts it. */
function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail(`${JSON.stringify(env)} was accepted`);
}

describe("configuration", () => {
  test("has documented defaults", () => {
    const config = loadConfig({});
    assert.equal(config.port, 3000);
    assert.equal(config.host, "0.0.0.0");
    assert.equal(config.dataDir, resolve("./data"));
    assert.deepEqual(config.database, { kind: "sqlite", path: resolve("./data/herald.db") });
    assert.equal(config.apiKey, undefined);
    assert.equal(config.allowPrivateTargets, false);
    assert.deepEqual(config.retrySchedule, DEFAULT_RETRY_SCHEDULE);
    assert.equal(config.deliveryTimeoutMs, 15_000);
    assert.equal(config.deliveryConcurrency, 64);
    assert.equal(config.deliveryConcurrencyPerWebhook, 16);
    assert.equal(config.bodyLimitBytes, 1024 * 1024);
    assert.equal(config.requestTimeoutMs, 60_000);
    assert.equal(config.logLevel, "info");
    assert.deepEqual(config.incomingSecrets, {});
    assert.deepEqual(config.corsOrigins, []);
  });

  test("reads CORS origins as browsers send them", () => {
    const config = loadConfig({
      HERALD_CORS_ORIGINS:
        " http://localhost:5173 , https://App.Example.com:443/,,https://b.example:8443",
    });
    assert.deepEqual(config.corsOrigins, [
      "http://localhost:5173",
      "https://app.example.com",
      "https://b.example:8443",
    ]);
    assert.deepEqual(loadConfig({ HERALD_CORS_ORIGINS: "*" }).corsOrigins, ["*"]);
  });

  test("refuses CORS entries that are not origins, naming each", () => {
    assert.throws(
      () =>
        loadConfig({
          HERALD_CORS_ORIGINS:
            "https://ok.example, app.example.com, https://x.example/app, ftp://f.example, https://u:p@y.example",
        }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        const [problem] = error.problems;
        assert.equal(error.problems.length, 1);
        assert.match(problem ?? "", /^HERALD_CORS_ORIGINS has entries that are not origins: /);
        for (const entry of [
          "'app.example.com'",
          "'https://x.example/app'",
          "'ftp://f.example'",
          "'https://u:p@y.example'",
        ]) {
          assert.ok(problem?.includes(entry), `${entry} is named in: ${problem}`);
        }
        assert.ok(!problem?.includes("'https://ok.example'"));
        assert.match(problem ?? "", /scheme:\/\/host\[:port\]/);
        return true;
      },
    );
  });

  test("reads every setting", () => {
    const config = loadConfig({
      PORT: "8080",
      HOST: "127.0.0.1",
      HERALD_DATA_DIR: "/tmp/herald-x",
      DATABASE_URL: "sqlite:/tmp/other.db",
      HERALD_API_KEY: "0123456789abcdef0123",
      HERALD_INCOMING_SECRET_XANO: "x",
      HERALD_INCOMING_SECRET_STRIPE: "whsec_s",
      HERALD_ALLOW_PRIVATE_TARGETS: "true",
      HERALD_RETRY_SCHEDULE: "1s,2m",
      HERALD_DELIVERY_TIMEOUT: "2s",
      HERALD_DELIVERY_CONCURRENCY: "8",
      LOG_LEVEL: "debug",
    });
    assert.equal(config.port, 8080);
    assert.deepEqual(config.database, { kind: "sqlite", path: "/tmp/other.db" });
    assert.deepEqual(config.incomingSecrets, { xano: "x", stripe: "whsec_s" });
    assert.equal(config.allowPrivateTargets, true);
    assert.deepEqual(config.retrySchedule, [1000, 120_000]);
    assert.equal(config.deliveryTimeoutMs, 2000);
    assert.equal(config.deliveryConcurrency, 8);
    assert.equal(config.deliveryConcurrencyPerWebhook, 2);
    assert.equal(loadConfig({ HERALD_REQUEST_TIMEOUT: "5s" }).requestTimeoutMs, 5000);
    assert.equal(
      loadConfig({ HERALD_DELIVERY_CONCURRENCY_PER_WEBHOOK: "40" }).deliveryConcurrencyPerWebhook,
      40,
    );
    assert.equal(config.logLevel, "debug");
    assert.deepEqual(loadConfig({ HERALD_RETRY_SCHEDULE: "none" }).retrySchedule, []);
    // A short key is taken (Herald warns about it in its log) rather than refused.
    assert.equal(loadConfig({ HERALD_API_KEY: "short" }).apiKey, "short");
  });

  test("names every bad setting at once", () => {
    try {
      loadConfig({
        PORT: "http",
        HERALD_DELIVERY_TIMEOUT: "soon",
        HERALD_DELIVERY_CONCURRENCY: "0",
        HERALD_ALLOW_PRIVATE_TARGETS: "maybe",
        HERALD_RETRY_SCHEDULE: "5s,x",
        DATABASE_URL: "mysql://x",
        LOG_LEVEL: "loud",
      });
      assert.fail("expected a ConfigError");
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      const names = [
        "PORT",
        "HERALD_DELIVERY_TIMEOUT",
        "HERALD_DELIVERY_CONCURRENCY",
        "HERALD_ALLOW_PRIVATE_TARGETS",
        "HERALD_RETRY_SCHEDULE",
        "DATABASE_URL",
        "LOG_LEVEL",
      ];
      for (const name of names) {
        assert.ok(
          error.problems.some((problem) => problem.startsWith(name)),
          `${name} missing from ${error.problems.join(" | ")}`,
        );
      }
    }
  });

  test("refuses numbers written other than in digits, retry delays beyond 30 days, and an empty schedule", () => {
    const refused = (env: Record<string, string>, name: string) => {
      assert.throws(
        () => loadConfig(env),
        (error: unknown) =>
          error instanceof ConfigError && error.problems.some((p) => p.startsWith(name)),
        `${JSON.stringify(env)} was accepted`,
      );
    };
    refused({ PORT: "0x10" }, "PORT");
    refused({ HERALD_BODY_LIMIT: String(50 * 1024 * 1024 + 1) }, "HERALD_BODY_LIMIT");
    refused({ PORT: "1e3" }, "PORT");
    refused({ HERALD_DELIVERY_CONCURRENCY: "6.4e1" }, "HERALD_DELIVERY_CONCURRENCY");
    refused({ HERALD_RETRY_SCHEDULE: "200000000d" }, "HERALD_RETRY_SCHEDULE");
    refused({ HERALD_RETRY_SCHEDULE: "31d" }, "HERALD_RETRY_SCHEDULE");
    refused({ HERALD_RETRY_SCHEDULE: "," }, "HERALD_RETRY_SCHEDULE");
    refused({ HERALD_RETRY_SCHEDULE: "5s,,5m" }, "HERALD_RETRY_SCHEDULE");
    assert.throws(
      () =>
        loadConfig({
          HERALD_DELIVERY_CONCURRENCY: "10",
          HERALD_DELIVERY_CONCURRENCY_PER_WEBHOOK: "16",
        }),
      /HERALD_DELIVERY_CONCURRENCY_PER_WEBHOOK=16 is not valid: use a whole number of attempts, at most HERALD_DELIVERY_CONCURRENCY, from 1 to 10\./,
    );
    assert.throws(
      () => loadConfig({ HERALD_BODY_LIMIT: "1kb" }),
      /HERALD_BODY_LIMIT=1kb is not valid: use a whole number of bytes from 1024/,
    );
    assert.throws(
      () => loadConfig({ HERALD_RETRY_SCHEDULE: "5,300,1800" }),
      /HERALD_RETRY_SCHEDULE=5,300,1800 is not valid: its numbers without a unit mix seconds/,
    );
    assert.deepEqual(
      loadConfig({ HERALD_RETRY_SCHEDULE: "1000,2000" }).retrySchedule,
      [1000, 2000],
    );
    assert.throws(
      () => loadConfig({ HERALD_RETRY_SCHEDULE: "5s,5x,5m" }),
      /HERALD_RETRY_SCHEDULE=5s,5x,5m is not valid: '5x' is not a delay\./,
    );
    assert.deepEqual(loadConfig({ HERALD_RETRY_SCHEDULE: "5s,30d" }).retrySchedule, [
      5000,
      30 * 24 * 3_600_000,
    ]);
    assert.equal(loadConfig({ PORT: "8080" }).port, 8080);
  });

  test("an API key no HTTP header can carry as given is refused, without echoing it", () => {
    for (const key of [
      "ключключключключключключ",
      "key with spaces 0123456789",
      "tab\tkey0123456789abc",
    ]) {
      try {
        loadConfig({ HERALD_API_KEY: key });
        assert.fail(`${key} was accepted`);
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        const text = error.problems.join(" ");
        assert.match(text, /HERALD_API_KEY may hold only printable ASCII/);
        assert.ok(!text.includes(key));
      }
    }
    assert.equal(
      loadConfig({ HERALD_API_KEY: "hk_Abc-123.~_xyz0123456789" }).apiKey,
      "hk_Abc-123.~_xyz0123456789",
    );
  });

  test("an unsupported DATABASE_URL is named by its scheme alone, never echoed whole", () => {
    for (const url of ["mysql://user:hunter2@db/herald", "user-hunter2@h/db"]) {
      try {
        loadConfig({ DATABASE_URL: url });
        assert.fail(`${url} was accepted`);
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        const text = error.problems.join(" ");
        assert.match(text, /DATABASE_URL (must start with sqlite: or postgres:\/\/|has no scheme)/);
        assert.doesNotMatch(text, /hunter2/);
      }
    }
  });

  test("a DATABASE_URL without a scheme says so and shows the form to write, with its host and port", () => {
    assert.throws(
      () => loadConfig({ DATABASE_URL: "localhost:5432" }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.deepEqual(error.problems, [
          "DATABASE_URL=localhost:5432 has no scheme, so Herald cannot tell which database it names. Write it as postgres://user:password@localhost:5432/dbname (with your user, password and database name), or sqlite:<path> for a SQLite file.",
        ]);
        return true;
      },
    );
    // Whatever stands before the host may be a password: only a host and port are echoed.
    for (const url of ["postgres:hunter2@db:5432/herald", "user:hunter2@db:5432/herald"]) {
      assert.throws(
        () => loadConfig({ DATABASE_URL: url }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          const text = error.problems.join(" ");
          assert.match(text, /postgres:\/\/user:password@db:5432\/dbname/);
          assert.doesNotMatch(text, /hunter2|not supported/);
          return true;
        },
        url,
      );
    }
  });

  test("a malformed postgres:// URL is a setting problem naming the part at fault, listed with the others", () => {
    const cases: Array<[string, RegExp]> = [
      [
        "postgres://herald:hunter2@db:99999/herald",
        /^DATABASE_URL has port 99999, which is not a port: use a whole number from 1 to 65535, such as 5432\.$/,
      ],
      [
        "postgres://herald:hunter2@db:abc/herald",
        /^DATABASE_URL has port abc, which is not a port: use a whole number from 1 to 65535, such as 5432\.$/,
      ],
      [
        "postgres://herald:hunter2@[::1/herald",
        /^DATABASE_URL has an IPv6 address without its closing \]: write it as \[::1\]:5432\.$/,
      ],
      [
        "postgres://herald:hunter2@::1:5432/herald",
        /^DATABASE_URL has the host ::1:5432, which has too many colons: write an IPv6 address in brackets, as \[::1\]:5432\.$/,
      ],
      [
        "postgres://herald:100%hunter2@db/herald",
        /^DATABASE_URL has a user name or password with a % not followed by two hexadecimal digits: write % itself as %25\.$/,
      ],
      [
        "postgres://herald:hunter2@db/herald?sslmode=requir",
        /^DATABASE_URL has sslmode=requir, which is not an sslmode: use disable, prefer, require, verify-ca, verify-full or no-verify\.$/,
      ],
    ];
    for (const [url, expected] of cases) {
      const problems = problemsOf({ DATABASE_URL: url, PORT: "http" });
      assert.equal(problems.length, 2, problems.join(" | "));
      assert.ok(problems[0]?.startsWith("PORT=http"), problems.join(" | "));
      assert.match(problems[1] ?? "", expected);
      assert.doesNotMatch(problems.join(" "), /hunter2|Invalid URL/);
    }
    for (const url of [
      "postgres://herald:hunter2@db:5432/herald",
      "postgresql://[::1]:5432/herald?sslmode=disable",
      "postgres:///herald?host=/var/run/postgresql",
      "postgres://herald:p%40ss@db/herald",
    ]) {
      assert.equal(loadConfig({ DATABASE_URL: url }).database.kind, "postgres", url);
    }
  });

  test("values are echoed as the operator wrote them", () => {
    assert.throws(
      () =>
        loadConfig({
          HERALD_ROLE: "Workr",
          LOG_LEVEL: "Loud",
          HERALD_ALLOW_PRIVATE_TARGETS: "Maybe",
        }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.deepEqual(error.problems, [
          "HERALD_ROLE=Workr is not valid: use all, api or worker.",
          "LOG_LEVEL=Loud is not valid: use one of fatal, error, warn, info, debug, trace, silent.",
          "HERALD_ALLOW_PRIVATE_TARGETS=Maybe is not valid: use true or false.",
        ]);
        return true;
      },
    );
    assert.equal(loadConfig({ HERALD_ROLE: "All", LOG_LEVEL: "WARN" }).logLevel, "warn");
  });

  test("the per-webhook limit quotes no bound taken from an invalid HERALD_DELIVERY_CONCURRENCY", () => {
    // 100 may well fit the limit the operator means to give: only the limit itself is told.
    assert.deepEqual(
      problemsOf({
        HERALD_DELIVERY_CONCURRENCY: "0",
        HERALD_DELIVERY_CONCURRENCY_PER_WEBHOOK: "100",
      }),
      ["HERALD_DELIVERY_CONCURRENCY=0 is not valid: use a whole number from 1 to 10000."],
    );
    const both = problemsOf({
      HERALD_DELIVERY_CONCURRENCY: "many",
      HERALD_DELIVERY_CONCURRENCY_PER_WEBHOOK: "some",
    });
    assert.equal(both.length, 2);
    assert.equal(
      both[1],
      "HERALD_DELIVERY_CONCURRENCY_PER_WEBHOOK=some is not valid: use a whole number of attempts, at most HERALD_DELIVERY_CONCURRENCY, from 1 to 10000.",
    );
    assert.doesNotMatch(both.join(" "), /\b64\b/);
  });

  test("a HERALD_ variable Herald does not read is a warning, with the setting it most likely means", () => {
    const config = loadConfig({
      HERALD_API_KEYS: "k",
      HERALD_RETRY_SCHEDUL: "5s",
      HERALD_ALLOW_PRIVATE_TARGET: "true",
      HERALD_PORT: "8080",
      HERALD_INCOMING_SECRETS_XANO: "s",
      HERALD_FROBNICATE: "1",
      // Only the built-in sources take a secret from the environment.
      HERALD_INCOMING_SECRET_GITHUB: "g",
      // Read by Herald, or by its tests and bench: no warning.
      HERALD_API_KEY: "0123456789abcdef0123",
      HERALD_INCOMING_SECRET_XANO: "x",
      HERALD_TEST_PG_URL: "postgres://postgres@127.0.0.1:5432/test",
      HERALD_DB_POOL_SIZE: "4",
      HERALD_SHUTDOWN_GRACE: "1s",
      PATH: "/usr/bin",
    });
    assert.deepEqual(config.unknownSettings, [
      "HERALD_ALLOW_PRIVATE_TARGET is not a Herald setting, so it is ignored. Did you mean HERALD_ALLOW_PRIVATE_TARGETS?",
      "HERALD_API_KEYS is not a Herald setting, so it is ignored. Did you mean HERALD_API_KEY?",
      "HERALD_FROBNICATE is not a Herald setting, so it is ignored. The settings are listed in the README's configuration table.",
      "HERALD_INCOMING_SECRETS_XANO is not a Herald setting, so it is ignored. Did you mean HERALD_INCOMING_SECRET_XANO?",
      "HERALD_INCOMING_SECRET_GITHUB is not a Herald setting, so it is ignored: only the built-in sources (xano, stripe, custom) take their secret from the environment. Create the source 'github' with its secret through POST /api/sources.",
      "HERALD_PORT is not a Herald setting, so it is ignored. Did you mean PORT?",
      "HERALD_RETRY_SCHEDUL is not a Herald setting, so it is ignored. Did you mean HERALD_RETRY_SCHEDULE?",
    ]);
    assert.deepEqual(loadConfig({}).unknownSettings, []);
  });
});
