/* The data-plane benchmark's sender (bench/dataplane.bench.ts compiles it at bench time): sends
 * COUNT UDP datagrams of 16 bytes to DST, each from the same source to a new destination port
 * (a new flow, so a new conntrack entry at the node) or, with "same", all on one flow. Prints the
 * wall time per datagram in nanoseconds. Through veth, the receiving namespaces process each
 * datagram in this process's context (softirq on return from the send), so the time includes the
 * node's netfilter path. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

int main(int argc, char **argv) {
  if (argc != 5 && argc != 6) {
    fprintf(stderr, "usage: flow-sender DST COUNT FIRSTPORT new|same [SOURCEPORT]\n");
    return 2;
  }
  long count = atol(argv[2]);
  int first = atoi(argv[3]);
  int same = strcmp(argv[4], "same") == 0;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) { perror("socket"); return 1; }
  if (argc == 6) {
    /* A fixed source port: the flow a reply was sent on (an established connection). */
    struct sockaddr_in src;
    memset(&src, 0, sizeof src);
    src.sin_family = AF_INET;
    src.sin_port = htons((unsigned short)atoi(argv[5]));
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) { perror("bind"); return 1; }
  }
  struct sockaddr_in dst;
  memset(&dst, 0, sizeof dst);
  dst.sin_family = AF_INET;
  if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
  char payload[16] = "symroute-bench";
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  long failed = 0;
  for (long i = 0; i < count; i++) {
    dst.sin_port = htons((unsigned short)(same ? first : first + (i % 60000)));
    if (sendto(fd, payload, sizeof payload, 0, (struct sockaddr *)&dst, sizeof dst) < 0) failed++;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
  printf("%.1f %ld\n", ns / (double)count, failed);
  return 0;
}
