import { randomBytes } from 'node:crypto';

// Replicate prediction ids look like "gm3qorzdhgbfurvjtvhg6dckhu": 26 lowercase base32 characters.
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function randomString(length: number, alphabet: string): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const byte of bytes) {
    // Rejection-free for base32 (256 % 32 === 0); the tiny bias for 62 symbols does not matter for ids.
    out += alphabet[byte % alphabet.length];
  }
  return out;
}

export function newPredictionId(): string {
  return randomString(26, BASE32);
}

/** File ids look like prediction ids on Replicate ("cneqzikepnug6xezperrr4z55o"). */
export function newFileId(): string {
  return randomString(26, BASE32);
}

/** Standard Webhooks message id; stays the same across retries of one delivery. */
export function newWebhookMessageId(): string {
  return `msg_${randomString(27, ALPHANUMERIC)}`;
}

/** Replicate API tokens look like "r8_" followed by 37 letters and digits. */
export function newApiToken(): string {
  return `r8_${randomString(37, ALPHANUMERIC)}`;
}
