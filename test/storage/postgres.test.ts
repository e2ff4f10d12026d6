import { openPostgresStore } from "../../src/adapters/storage/postgres/postgres-store.js";
import { createTestSchema, TEST_PG_URL } from "../support/postgres.js";
import { describeStoreContract } from "./store-contract.js";

describeStoreContract("PostgreSQL", async () => {
  const { schema, drop } = await createTestSchema();
  const open = () => openPostgresStore({ url: TEST_PG_URL, poolSize: 4, schema });
  let store = await open();
  return {
    get store() {
      return store;
    },
    async reopen() {
      await store.close();
      store = await open();
      return store;
    },
    async destroy() {
      await store.close();
      await drop();
    },
  };
});
