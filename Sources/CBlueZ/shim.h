#ifndef VAKTPOST_CBLUEZ_SHIM_H
#define VAKTPOST_CBLUEZ_SHIM_H
/* BlueZ's headers use these types without including their definitions. */
#include <stdint.h>
#include <sys/socket.h>
#include <bluetooth/bluetooth.h>
#include <bluetooth/hci.h>
#include <bluetooth/hci_lib.h>
#endif
