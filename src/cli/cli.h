/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The pcapd subcommands. Each takes the arguments after its name (argv[0] is
 * the subcommand name), prints its own usage and errors, and returns the exit
 * status for main(): 0 on success, 1 on a runtime failure, 2 on bad usage.
 */

int cmd_capture(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_agent(int argc, char **argv);
int cmd_controller(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_agents(int argc, char **argv);
int cmd_up(int argc, char **argv);
int cmd_history(int argc, char **argv);
