#ifndef VAKTPOST_CUDEV_SHIM_H
#define VAKTPOST_CUDEV_SHIM_H
#include <libudev.h>
#endif
