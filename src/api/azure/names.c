/* SPDX-License-Identifier: MIT */
/*
 * Names in Azure paths (azure.h): subscription ids, which are pcapd accounts
 * written as UUIDs, resource group and resource names, api-versions.
 */
#include <errno.h>
#include <string.h>

#include "api/azure/azure.h"

bool azure_account_of(const char *sub, size_t n, char ret[JOB_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	char out[JOB_ID_LEN + 1];
	size_t k = 0;

	if (n != AZ_SUBSCRIPTION_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		int v;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (sub[i] != '-')
				return false;
			continue;
		}
		v = hex_digit(sub[i]);
		if (v < 0)
			return false;
		out[k++] = hex[v];
	}
	out[k] = '\0';
	memcpy(ret, out, sizeof(out));
	return true;
}

void azure_subscription_of(const char *account, char ret[AZ_SUBSCRIPTION_LEN + 1])
{
	size_t k = 0;

	for (size_t i = 0; i < JOB_ID_LEN; i++) {
		if (i == 8 || i == 12 || i == 16 || i == 20)
			ret[k++] = '-';
		ret[k++] = account[i];
	}
	ret[k] = '\0';
}

static bool digits(const char *s, size_t n, int *ret)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return true;
}

int azure_api_version_check(const char *v)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	size_t n;
	int y, m, d;

	if (!v)
		return -ENOENT;
	n = strlen(v);
	if (n != 10 && !(n == 18 && strcmp(v + 10, "-preview") == 0))
		return -EINVAL;
	if (v[4] != '-' || v[7] != '-' || !digits(v, 4, &y) || !digits(v + 5, 2, &m) || !digits(v + 8, 2, &d))
		return -EINVAL;
	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1] ||
	    (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)))
		return -EINVAL;
	/* Same shape: the strings compare as the dates do. */
	return strncmp(v, AZ_API_VERSION_MIN, 10) < 0 ? -ERANGE : 0;
}

static bool alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool azure_group_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > AZ_GROUP_MAX || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!alnum(s[i]) && !strchr("_-.()", s[i]))
			return false;
	return true;
}

bool azure_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > AZ_NAME_MAX || !alnum(s[0]) || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!alnum(s[i]) && !strchr("_-.", s[i]))
			return false;
	return true;
}
