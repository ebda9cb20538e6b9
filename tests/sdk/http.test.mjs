// SPDX-License-Identifier: MIT
// Every endpoint through the SDK over plain HTTP, baseURL …/client/v4.
import { env } from './common.mjs';
import { pcapSuite } from './suite.mjs';

pcapSuite({
  label: 'http /client/v4',
  https: false,
  prefix: true,
  account: env('PCAPD_SDK_ACCOUNT_ID'),
  token: env('PCAPD_SDK_TOKEN'),
  bucket: env('PCAPD_SDK_BUCKET'),
});
