import { sendJson } from './http.ts';
import type { Handler } from './routes.ts';

// The account the token belongs to (GET /v1/account), and its webhook signing secret.

export const getAccount: Handler = ({ ctx, res }) => {
  sendJson(res, 200, ctx.options.account);
};

export const getWebhookSecret: Handler = ({ ctx, res }) => {
  sendJson(res, 200, { key: ctx.webhookSecret });
};
