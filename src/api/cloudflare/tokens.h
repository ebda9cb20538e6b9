/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * GET /accounts/{account}/tokens/verify in the Cloudflare dialect
 * (tokens.c), reached from cloudflare.c's routing of /accounts/{account}/….
 */

#include "api/api.h"

/* Answers req; sub is what follows "/accounts/{account}/tokens". */
void cloudflare_tokens(Api *a, HttpRequest *req, const char *account, const char *sub);
