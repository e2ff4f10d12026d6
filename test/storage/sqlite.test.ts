import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSqliteStore } from "../../src/adapters/storage/sqlite/sqlite-store.js";
import { describeStoreContract } from "./store-contract.js";

describeStoreContract("SQLite", async () => {
  const dir = mkdtempSync(join(tmpdir(), "herald-store-"));
  const path = join(dir, "herald.db");
  let store = openSqliteStore(path);
  return {
    get store() {
      return store;
    },
    async reopen() {
      await store.close();
      store = openSqliteStore(path);
      return store;
    },
    async destroy() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
