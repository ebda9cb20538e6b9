// SPDX-License-Identifier: MIT
// Every endpoint through the SDK over HTTPS (the stack's self-signed
// certificate, trusted through NODE_EXTRA_CA_CERTS), baseURL without
// /client/v4.
import { env } from './common.mjs';
import { pcapSuite } from './suite.mjs';

pcapSuite({
  label: 'https /',
  https: true,
  prefix: false,
  account: env('PCAPD_SDK_TLS_ACCOUNT_ID'),
  token: env('PCAPD_SDK_TLS_TOKEN'),
  bucket: env('PCAPD_SDK_TLS_BUCKET'),
});
