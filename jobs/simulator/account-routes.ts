import { sendJson } from './http.ts';
import type { Handler } from './routes.ts';

// The account the token belongs to, and its webhook signing secret.

export const getWebhookSecret: Handler = ({ ctx, res }) => {
  sendJson(res, 200, { key: ctx.webhookSecret });
};
