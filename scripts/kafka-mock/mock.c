// A Kafka-protocol broker for tests: librdkafka's mock cluster as a process (see src/replication/kafka-mock.ts).
//   mock [--brokers N] [--port P] [--topic NAME:PARTITIONS]...
// Prints BOOTSTRAP=host:port,... then reads commands from stdin ("create TOPIC PARTITIONS" -> "ok" or
// "error ..."); exits when stdin closes, so a test runner that dies takes the broker with it.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static int fixed_port;	// 0: let the OS choose
static int next_broker; // the nth loopback bind gets fixed_port + n

// The mock always binds 127.0.0.1:0 and has no port option. This definition interposes libc's for
// librdkafka, so a fixed port (one per broker) survives a restart of the process: clients reconnect.
int bind(int fd, const struct sockaddr *addr, socklen_t len) {
	static int (*real_bind)(int, const struct sockaddr *, socklen_t);
	if (!real_bind) real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
	struct sockaddr_in *in = (struct sockaddr_in *)addr;
	if (fixed_port && addr->sa_family == AF_INET && in->sin_port == 0 && in->sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
		struct sockaddr_in mine = *in;
		mine.sin_port = htons(fixed_port + __atomic_fetch_add(&next_broker, 1, __ATOMIC_SEQ_CST));
		// The previous process's accepted connections may linger in TIME_WAIT on this port.
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		return real_bind(fd, (struct sockaddr *)&mine, sizeof mine);
	}
	return real_bind(fd, addr, len);
}

// librdkafka aborts when its bind fails, so a taken port is refused here with a plain message.
static int port_free(int port) {
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 1) == 0;
	close(fd);
	return ok;
}

// Exits in the handler: one that only interrupted fgets lost signals landing between two reads (17 of
// 100 SIGTERMs sent right after BOOTSTRAP= hung). stdout is flushed after every line already.
static void on_signal(int sig) {
	(void)sig;
	_exit(0);
}

// NULL on success, else why not.
static const char *create_topic(rd_kafka_mock_cluster_t *mc, const char *name, int partitions) {
	if (!*name || partitions < 1) return "want a name and at least 1 partition";
	rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, name, partitions, 1);
	return err ? rd_kafka_err2str(err) : NULL;
}

int main(int argc, char **argv) {
	int brokers = 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--brokers") && i + 1 < argc) brokers = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--port") && i + 1 < argc) fixed_port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--topic") && i + 1 < argc) i++; // created once the cluster is up
		else {
			fprintf(stderr, "usage: %s [--brokers N] [--port P] [--topic NAME:PARTITIONS]...\n", argv[0]);
			return 2;
		}
	}
	if (brokers < 1 || fixed_port < 0 || fixed_port + brokers > 65536) {
		fprintf(stderr, "bad --brokers or --port\n");
		return 2;
	}
	for (int b = 0; fixed_port && b < brokers; b++)
		if (!port_free(fixed_port + b)) {
			fprintf(stderr, "port %d is in use\n", fixed_port + b);
			return 1;
		}

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	char errstr[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	if (!rk) {
		fprintf(stderr, "rd_kafka_new: %s\n", errstr);
		return 1;
	}
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
	if (!mc) {
		fprintf(stderr, "rd_kafka_mock_cluster_new failed\n");
		return 1;
	}
	// The 2.0.2 mock encodes ListOffsets v4/v5 replies wrongly (LeaderEpoch as 8 bytes): cap it at v3.
	rd_kafka_mock_set_apiversion(mc, 2, 0, 3);

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--topic")) continue;
		char *spec = argv[++i], *colon = strrchr(spec, ':');
		if (colon) *colon = 0;
		const char *why = colon ? create_topic(mc, spec, atoi(colon + 1)) : "want NAME:PARTITIONS";
		if (why) {
			fprintf(stderr, "--topic %s: %s\n", spec, why);
			_exit(2);
		}
	}

	printf("BOOTSTRAP=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);

	char line[1024], name[900], extra[2];
	int partitions;
	while (fgets(line, sizeof line, stdin)) {
		const char *why = "unknown command (want: create TOPIC PARTITIONS, down, up)";
		if (!strchr(line, '\n') && !feof(stdin)) {
			why = "line too long";
			while (fgets(line, sizeof line, stdin) && !strchr(line, '\n')) {} // one answer per line
		}
		else if (sscanf(line, "create %899s %d %1s", name, &partitions, extra) == 2) why = create_topic(mc, name, partitions);
		// A broker restart as clients see it: every connection dropped and new ones refused until "up"; the
		// data stays, as a real broker's log stays on its disk.
		else if (!strcmp(line, "down\n")) why = rd_kafka_mock_broker_set_down(mc, -1) ? "cannot set the brokers down" : NULL;
		else if (!strcmp(line, "up\n")) why = rd_kafka_mock_broker_set_up(mc, -1) ? "cannot set the brokers up" : NULL;
		if (why) printf("error %s\n", why);
		else printf("ok\n");
		fflush(stdout);
	}

	// No rd_kafka_mock_cluster_destroy: it waits out its thread's 1 s poll about half the time, and the
	// cluster holds nothing but memory and sockets, which the exit releases.
	_exit(0);
}
