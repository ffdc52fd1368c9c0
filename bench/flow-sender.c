/* The data-plane benchmark's sender (bench/dataplane.bench.ts compiles it at bench time): sends
 * COUNT UDP datagrams of 16 bytes to DST, each from the same source to a new destination port
 * (a new flow, so a new conntrack entry at the node) or, with "same", all on one flow. Prints the
 * wall time per datagram in nanoseconds, the number of failed sends, and this thread's CPU time
 * per datagram. Through veth, the receiving namespaces process each datagram in this process's
 * context (softirq when the send enables bottom halves again), so both times include the node's
 * netfilter path; the CPU time leaves out the time other work on a busy machine takes the CPU
 * away (and, on kernels with IRQ_TIME_ACCOUNTING, the softirq work itself: compare like with like).
 *
 * `flow-sender sink PORT` is the node's host-network backend: a UDP socket on PORT with the
 * smallest receive buffer, never read while the sender runs, so that the kernel delivers every
 * datagram to it (after the last input hook, conntrack's confirm) and drops it there, counting it
 * in /proc/net/snmp (InDatagrams while the buffer has room, RcvbufErrors after). It prints "ready",
 * then obeys one command per line on stdin: "drain" reads what is queued (prints how many),
 * "reply" waits for one datagram and answers its sender from PORT (so that the flow is replied,
 * established in conntrack), printing "replied". It exits at the end of its input. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

static int sink(int port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) { perror("socket"); return 1; }
  int small = 1; /* the kernel rounds it up to its minimum */
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) < 0) { perror("SO_RCVBUF"); return 1; }
  struct timeval wait = {5, 0};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait) < 0) { perror("SO_RCVTIMEO"); return 1; }
  struct sockaddr_in me;
  memset(&me, 0, sizeof me);
  me.sin_family = AF_INET;
  me.sin_port = htons((unsigned short)port);
  if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0) { perror("bind"); return 1; }
  printf("ready\n");
  fflush(stdout);
  char line[64], buf[2048];
  while (fgets(line, sizeof line, stdin) != NULL) {
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    if (strncmp(line, "drain", 5) == 0) {
      long n = 0;
      while (recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, NULL, NULL) >= 0) n++;
      printf("drained %ld\n", n);
    } else if (strncmp(line, "reply", 5) == 0) {
      if (recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len) < 0) {
        printf("error %s\n", strerror(errno));
      } else if (sendto(fd, "symroute-reply", 14, 0, (struct sockaddr *)&from, len) < 0) {
        printf("error %s\n", strerror(errno));
      } else {
        printf("replied\n");
      }
    } else {
      printf("error unknown command\n");
    }
    fflush(stdout);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "sink") == 0) return sink(atoi(argv[2]));
  if (argc != 5 && argc != 6) {
    fprintf(stderr, "usage: flow-sender DST COUNT FIRSTPORT new|same [SOURCEPORT] | flow-sender sink PORT\n");
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
  struct timespec a, b, ca, cb;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ca);
  clock_gettime(CLOCK_MONOTONIC, &a);
  long failed = 0;
  for (long i = 0; i < count; i++) {
    dst.sin_port = htons((unsigned short)(same ? first : first + (i % 60000)));
    if (sendto(fd, payload, sizeof payload, 0, (struct sockaddr *)&dst, sizeof dst) < 0) failed++;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cb);
  double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
  double cpu = (double)(cb.tv_sec - ca.tv_sec) * 1e9 + (double)(cb.tv_nsec - ca.tv_nsec);
  printf("%.1f %ld %.1f\n", ns / (double)count, failed, cpu / (double)count);
  return 0;
}
