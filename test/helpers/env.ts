// Where the real services of this machine (or CI) are. Override with TEST_* variables.
export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const NATS_URL = process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";
// Keys of every test node (a node with a real server configured refuses to start without them).
export const TEST_JWT_SECRET = "test-only-jwt-secret-0123456789abcdef0123";
export const TEST_INTERNAL_SECRET = "test-only-internal-secret-0123456789abcdef";
