import assert from "node:assert/strict";
import { resolve } from "node:path";
import { describe, test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config.js";
import { DEFAULT_RETRY_SCHEDULE } from "../../src/domain/retry-policy.js";

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
        assert.match(text, /DATABASE_URL must start with sqlite: or postgres:\/\//);
        assert.doesNotMatch(text, /hunter2/);
      }
    }
  });
});
