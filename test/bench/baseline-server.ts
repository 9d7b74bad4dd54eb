// The floor Kiln is compared with: a minimal tRPC v11 server whose `generate` validates the
// same input schema as Kiln, checks the Authorization header the same way (against a constant,
// no lookup) and does ONE INSERT through a pg Pool of Kiln's default size. Run as a child
// process by the enqueue benchmark; configured by environment variables.
import { timingSafeEqual } from 'node:crypto';
import { TRPCError, initTRPC } from '@trpc/server';
import { createHTTPServer } from '@trpc/server/adapters/standalone';
import pg from 'pg';
import { bearerToken } from '../../server/auth.ts';
import { generateInput } from '../../server/schemas.ts';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (the enqueue benchmark starts this server)`);
  return value;
}

const databaseUrl = required('DATABASE_URL');
const port = Number(required('PORT'));
const apiKey = Buffer.from(required('BENCH_API_KEY'));
const tenantId = required('BENCH_TENANT_ID');
const poolSize = Number(process.env.BENCH_POOL_SIZE ?? '20');

const pool = new pg.Pool({ connectionString: databaseUrl, max: poolSize, application_name: 'kiln-bench-baseline' });
pool.on('error', () => {}); // an idle connection dropping must not crash the floor measurement

interface Context {
  authorized: boolean;
}

const t = initTRPC.context<Context>().create({ isDev: false });

const router = t.router({
  health: t.procedure.query(() => 'ok'),
  generate: t.procedure.input(generateInput).mutation(async ({ ctx, input }) => {
    if (!ctx.authorized) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'API key not recognised' });
    // The benchmark sends prompts only; image operations are Kiln's, not the floor's.
    if (input.operation !== 'text-to-image') throw new TRPCError({ code: 'BAD_REQUEST', message: 'the baseline takes prompts only' });
    const request = {
      platforms: input.platforms,
      customSizes: input.sizes,
      formats: input.formats,
      crop: input.crop,
      aspectRatio: input.aspectRatio,
      seed: input.seed ?? null,
      negativePrompt: input.negativePrompt ?? null,
    };
    const { rows } = await pool.query<{ id: string }>(
      'INSERT INTO bench_baseline (tenant_id, prompt, request) VALUES ($1, $2, $3) RETURNING id',
      [tenantId, input.prompt, JSON.stringify(request)],
    );
    return { id: rows[0]?.id ?? '', status: 'queued' as const, deduplicated: false };
  }),
});

const server = createHTTPServer({
  router,
  basePath: '/trpc/',
  maxBodySize: 4 * 1024 * 1024, // Kiln's default KILN_MAX_BODY_BYTES
  createContext: ({ req }): Context => {
    const key = bearerToken(req.headers.authorization);
    const given = key === undefined ? undefined : Buffer.from(key);
    return { authorized: given !== undefined && given.length === apiKey.length && timingSafeEqual(given, apiKey) };
  },
});

server.listen(port, '127.0.0.1');

const stop = () => {
  server.close();
  server.closeAllConnections();
  // Ending the pool lets its backends exit, which is when PostgreSQL records their statistics.
  void pool.end().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
