/* SPDX-License-Identifier: MIT */
/* pcapctl list, get, download, stream, stop: one capture or all of them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcapctl/pcapctl.h"
#include "pcapctl/render.h"
#include "pcapctl/table.h"

static const char list_usage[] = "usage: pcapctl list [--json]\n"
				 "\n"
				 "Lists the account's captures: ID, TYPE, STATUS, SUBMITTED, PACKETS, COLO\n"
				 "(the agent or colo it runs on) and OUTPUT (its bucket, or the file it writes on\n"
				 "each agent). Captures made through the Azure dialect are listed too. --json\n"
				 "prints the API's array of capture objects.\n";

static const char get_usage[] = "usage: pcapctl get ID [--json]\n"
				"\n"
				"Shows one capture, a field per line. --json prints the API's object.\n";

static const char download_usage[] = "usage: pcapctl download ID -o FILE|- [--format pcap|pcapng]\n"
				     "\n"
				     "Downloads a capture as one pcap file (a full capture's per-agent files are\n"
				     "merged by the controller). FILE is written as FILE.part and renamed once\n"
				     "complete; on any failure nothing is left behind. '-' streams to standard\n"
				     "output (not a terminal). --format pcapng: the annotated merge, each packet on\n"
				     "its agent's interface (AGENT or AGENT/IFACE, described with the colo, filter\n"
				     "and snaplen) with each agent's packets and kernel drops as statistics.\n";

static const char stream_usage[] = "usage: pcapctl stream ID [-o FILE|-] [--format pcapng|pcap]\n"
				   "\n"
				   "Streams a running full capture live, as one pcapng merged across its agents\n"
				   "(each packet's interface is AGENT or AGENT/IFACE), from its first packet until\n"
				   "the capture ends: pcapctl stream ID | wireshark -k -i -\n"
				   "--format pcap: classic pcap (one link type: an agent with another is left out,\n"
				   "and the end says so), for tools that read no pcapng.\n"
				   "Standard output by default. Exits 0 when the stream is complete, 1 when the\n"
				   "controller cut it (a reader too slow for the agents) or it broke, saying why.\n";

static const char stop_usage[] = "usage: pcapctl stop ID\n"
				 "\n"
				 "Asks the controller to stop a capture; its files are kept. Prints nothing.\n";

static const char retry_usage[] = "usage: pcapctl retry-upload ID\n"
				  "\n"
				  "Asks the agents of a failed full capture whose shares the object store did not\n"
				  "take in time (status upload_failed) to upload them again: the capture goes back\n"
				  "to conversion_running, then ends success or failed. Prints nothing; a capture\n"
				  "with nothing to retry is an error saying why.\n";

/* A number member as text, or NULL (the table shows "-"). */
static char *num_text(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_number(v) ? render_value(v) : NULL;
}

static const TableColumn list_cols[] = {
	{"ID", false},     {"TYPE", false}, {"STATUS", false}, {"SUBMITTED", false},
	{"PACKETS", true}, {"COLO", false}, {"OUTPUT", false},
};

static int list_row(Table *t, const json_t *item)
{
	char *submitted = NULL, *packets = num_text(item, "packets_captured");
	const char *cells[ARRAY_SIZE(list_cols)];
	int r;

	if (ctl_str(item, "submitted"))
		submitted = render_short_time(ctl_str(item, "submitted"));
	cells[0] = ctl_str(item, "id");
	cells[1] = ctl_str(item, "type");
	cells[2] = ctl_str(item, "status");
	cells[3] = submitted;
	cells[4] = packets;
	cells[5] = ctl_str(item, "colo_name");
	cells[6] = ctl_str(item, "destination_conf");
	/* No bucket: the file on the agents (pcapd's "outputs"). */
	if (!cells[6] || !cells[6][0])
		cells[6] = ctl_str(json_array_get(json_object_get(item, "outputs"), 0), "target");
	r = table_add_row(t, cells);
	free(submitted);
	free(packets);
	return r;
}

int cmd_list(int argc, char **argv, CtlOptions *o)
{
	CtlSimpleArgs a = {.cmd = "list", .usage = list_usage, .pos_names = "", .json_ok = true};

	return ctl_list_command(argc, argv, o, &a, "/pcaps", list_cols, ARRAY_SIZE(list_cols), list_row);
}

int cmd_get(int argc, char **argv, CtlOptions *o)
{
	CtlSimpleArgs a = {.cmd = "get", .usage = get_usage, .npos = 1, .pos_names = "ID", .json_ok = true};
	char path[sizeof("/pcaps/") + CTL_ID_LEN];
	json_t *result = NULL;
	int r;

	r = ctl_parse_id_path(argc, argv, o, &a, "/pcaps/", "", path, sizeof(path));
	if (r != CTL_EXIT_OK)
		return r == CTL_PARSE_HELP ? CTL_EXIT_OK : r;
	r = ctl_call(o, "GET", path, NULL, &result);
	if (r != CTL_EXIT_OK)
		return r;
	if (!json_is_object(result)) {
		ctl_error("get: the answer's result is not an object");
		r = CTL_EXIT_FAIL;
	} else if (a.json) {
		r = ctl_print_json(result);
	} else if (render_object(stdout, result) < 0 || fflush(stdout) == EOF) {
		ctl_error("writing standard output failed");
		r = CTL_EXIT_FAIL;
	}
	json_decref(result);
	return r;
}

/* The steps download and stream share: ID checked, connected, the output
 * (-o, or def) opened, Ctrl-C caught (it aborts the transfer, so that
 * FILE.part is removed). CTL_EXIT_OK with *ret_c and *out, or the status. */
static int open_transfer(int argc, char **argv, CtlOptions *o, CtlSimpleArgs *a, const char *def, Client **ret_c,
			 CtlOutput *out)
{
	int r;

	r = ctl_parse_simple(argc, argv, o, a);
	if (r != CTL_EXIT_OK)
		return r;
	r = ctl_check_id(a->cmd, a->pos[0]);
	if (r != CTL_EXIT_OK)
		return r;
	if (!a->out && !def) {
		ctl_error("%s: -o FILE (or -o - for standard output) is required", a->cmd);
		return CTL_EXIT_USAGE;
	}
	r = ctl_connect(o, ret_c);
	if (r != CTL_EXIT_OK)
		return r;
	r = ctl_output_open(a->out ? a->out : def, out);
	if (r != CTL_EXIT_OK) {
		client_free(*ret_c);
		*ret_c = NULL;
		return r;
	}
	ctl_catch_interrupts();
	return CTL_EXIT_OK;
}

int cmd_download(int argc, char **argv, CtlOptions *o)
{
	CtlSimpleArgs a = {.cmd = "download",
			   .usage = download_usage,
			   .npos = 1,
			   .pos_names = "ID",
			   .out_ok = true,
			   .format_ok = true};
	CtlOutput out;
	Client *c = NULL;
	int r;

	r = open_transfer(argc, argv, o, &a, NULL, &c, &out);
	if (r != CTL_EXIT_OK)
		return r == CTL_PARSE_HELP ? CTL_EXIT_OK : r;
	r = ctl_download_to(c, a.pos[0], a.format, &out);
	client_free(c);
	return r;
}

int cmd_stream(int argc, char **argv, CtlOptions *o)
{
	CtlSimpleArgs a = {.cmd = "stream",
			   .usage = stream_usage,
			   .npos = 1,
			   .pos_names = "ID",
			   .out_ok = true,
			   .format_ok = true};
	char path[sizeof("/pcaps//stream?format=pcapng") + CTL_ID_LEN], end[512];
	ClientError err = {0};
	CtlOutput out;
	Client *c = NULL;
	int r;

	r = open_transfer(argc, argv, o, &a, "-", &c, &out);
	if (r != CTL_EXIT_OK)
		return r == CTL_PARSE_HELP ? CTL_EXIT_OK : r;
	r = snprintf(path, sizeof(path), "/pcaps/%s/stream%s%s", a.pos[0], a.format ? "?format=" : "",
		     a.format ? a.format : "");
	if (r < 0 || (size_t)r >= sizeof(path)) { /* ctl_check_id bounded the id */
		client_free(c);
		ctl_output_abort(&out);
		ctl_error("stream: the path of capture %s is too long", a.pos[0]);
		return CTL_EXIT_FAIL;
	}
	r = client_stream(c, path, out.fd,
			  out.is_stdout ? "standard output"
			  : out.part    ? out.part
					: out.path,
			  NULL, end, sizeof(end), &err);
	client_free(c);
	if (r < 0) {
		ctl_output_abort(&out);
		return ctl_fail(&err);
	}
	r = ctl_output_commit(&out);
	if (r != CTL_EXIT_OK)
		return r;
	if (strncmp(end, "complete", 8) != 0) {
		ctl_error("stream of %s: %s", a.pos[0], end[0] ? end : "ended without saying how (connection lost?)");
		return CTL_EXIT_FAIL;
	}
	if (end[8])
		fprintf(stderr, "pcapctl: stream of %s %s\n", a.pos[0], end);
	return CTL_EXIT_OK;
}

/* A capture's action without a body and without output: METHOD
 * /pcaps/ID/<action>; the answer's errors are printed by ctl_call. */
static int capture_action(int argc, char **argv, CtlOptions *o, const char *cmd, const char *usage, const char *method)
{
	CtlSimpleArgs a = {.cmd = cmd, .usage = usage, .npos = 1, .pos_names = "ID"};
	char suffix[32], path[sizeof("/pcaps/") + CTL_ID_LEN + sizeof(suffix)];
	json_t *result = NULL;
	int r;

	snprintf(suffix, sizeof(suffix), "/%s", cmd);
	r = ctl_parse_id_path(argc, argv, o, &a, "/pcaps/", suffix, path, sizeof(path));
	if (r != CTL_EXIT_OK)
		return r == CTL_PARSE_HELP ? CTL_EXIT_OK : r;
	r = ctl_call(o, method, path, NULL, &result);
	json_decref(result);
	return r;
}

int cmd_stop(int argc, char **argv, CtlOptions *o)
{
	return capture_action(argc, argv, o, "stop", stop_usage, "PUT");
}

int cmd_retry_upload(int argc, char **argv, CtlOptions *o)
{
	return capture_action(argc, argv, o, "retry-upload", retry_usage, "POST");
}
