#ifndef VAKTPOST_CHCI_H
#define VAKTPOST_CHCI_H
/* The Linux kernel's HCI socket interface (net/bluetooth/hci_sock.c: the socket address, the
   per-socket packet filter, the channels), written out here so that the agent links no Bluetooth
   library: libbluetooth (GPL) was linked for two address-formatting functions and loaded at
   every start. BlueZ's <bluetooth/hci.h> describes the same kernel ABI. */
#include <stdint.h>
#include <sys/socket.h>

/* socket(AF_BLUETOOTH, SOCK_RAW, HCI_PROTOCOL); setsockopt(fd, HCI_SOCKET_LEVEL, HCI_FILTER_OPTION, ...) */
#define HCI_PROTOCOL 1
#define HCI_SOCKET_LEVEL 0
#define HCI_FILTER_OPTION 2

/* The socket's channel: RAW shares the adapter with bluetoothd; USER takes it alone (adapter down). */
#define HCI_CHANNEL_RAW_SOCKET 0
#define HCI_CHANNEL_USER_SOCKET 1

struct hci_socket_address {
    sa_family_t family; /* AF_BLUETOOTH */
    unsigned short device; /* hciN: N */
    unsigned short channel;
};

/* Which packets a raw socket receives: a bit per H4 packet type, a bit per event code. The kernel
   copies at most this many bytes (struct hci_ufilter). */
struct hci_socket_filter {
    uint32_t type_mask;
    uint32_t event_mask[2];
    uint16_t opcode;
};

#endif
