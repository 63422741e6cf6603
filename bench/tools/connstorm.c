// SPDX-License-Identifier: Apache-2.0
/*
 * connstorm: a TCP connection-rate load generator and sink for the
 * Service-forwarding benchmark, so the client is not the bottleneck.
 *
 *   connstorm serve PORT                      accept and close, one thread per CPU
 *   connstorm connect IP PORT THREADS MS      connect/close in a loop on THREADS threads for MS ms
 *
 * `connect` prints one JSON line: connections, failures, connections per
 * second, and p50/p99 connect() time in microseconds (SYN to SYN-ACK as the
 * client sees it). Sockets close with SO_LINGER 0 (RST), so the client never
 * runs out of ports in TIME_WAIT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (1 << 22)

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct worker {
	pthread_t thread;
	struct sockaddr_in target;
	uint64_t deadline;
	uint32_t *samples; /* connect time in µs */
	size_t count, failures, capacity;
};

static void *connect_loop(void *arg)
{
	struct worker *w = arg;
	struct linger reset = {1, 0};
	while (now_ns() < w->deadline) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0) {
			w->failures++;
			continue;
		}
		uint64_t started = now_ns();
		int rc = connect(fd, (struct sockaddr *)&w->target, sizeof(w->target));
		uint64_t took = now_ns() - started;
		if (rc == 0 && w->count < w->capacity)
			w->samples[w->count++] = (uint32_t)(took / 1000);
		else if (rc != 0)
			w->failures++;
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
		close(fd);
	}
	return NULL;
}

static int by_value(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int cmd_connect(const char *ip, int port, int threads, int ms)
{
	struct worker *workers = calloc((size_t)threads, sizeof(*workers));
	uint64_t started = now_ns();
	for (int i = 0; i < threads; i++) {
		workers[i].target.sin_family = AF_INET;
		workers[i].target.sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, ip, &workers[i].target.sin_addr) != 1) {
			fprintf(stderr, "connstorm: bad address %s\n", ip);
			return 2;
		}
		workers[i].deadline = started + (uint64_t)ms * 1000000ull;
		workers[i].capacity = MAX_SAMPLES / (size_t)threads;
		workers[i].samples = malloc(workers[i].capacity * sizeof(uint32_t));
		pthread_create(&workers[i].thread, NULL, connect_loop, &workers[i]);
	}
	size_t total = 0, failures = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(workers[i].thread, NULL);
		total += workers[i].count;
		failures += workers[i].failures;
	}
	double seconds = (double)(now_ns() - started) / 1e9;
	uint32_t *all = malloc((total ? total : 1) * sizeof(uint32_t));
	size_t at = 0;
	for (int i = 0; i < threads; i++) {
		memcpy(all + at, workers[i].samples, workers[i].count * sizeof(uint32_t));
		at += workers[i].count;
	}
	qsort(all, total, sizeof(uint32_t), by_value);
	printf("{\"connections\":%zu,\"failures\":%zu,\"perSecond\":%.0f,\"p50us\":%u,\"p99us\":%u}\n", total, failures, total / seconds,
	       total ? all[total / 2] : 0, total ? all[(size_t)(total * 0.99)] : 0);
	return 0;
}

static void *accept_loop(void *arg)
{
	int listener = *(int *)arg;
	for (;;) {
		int fd = accept(listener, NULL, NULL);
		if (fd >= 0)
			close(fd);
	}
	return NULL;
}

static int cmd_serve(int port)
{
	int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(listener, (struct sockaddr *)&address, sizeof(address)) != 0 || listen(listener, 4096) != 0) {
		fprintf(stderr, "connstorm: cannot listen on %d: %s\n", port, strerror(errno));
		return 1;
	}
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	for (long i = 1; i < cpus; i++) {
		pthread_t thread;
		pthread_create(&thread, NULL, accept_loop, &listener);
	}
	printf("ready\n");
	fflush(stdout);
	accept_loop(&listener);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "serve"))
		return cmd_serve(atoi(argv[2]));
	if (argc == 6 && !strcmp(argv[1], "connect"))
		return cmd_connect(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	fprintf(stderr, "usage: connstorm serve PORT | connect IP PORT THREADS MS\n");
	return 2;
}
