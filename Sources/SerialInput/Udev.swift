#if canImport(Glibc)
import Glibc
#endif
internal import CUdev

/// One serial device as udev describes it: what `[[serial]] match` is compared with.
public struct SerialDevice: Hashable, Sendable {
    /// `/dev/ttyUSB0`
    public var devnode: String
    /// `ID_VENDOR_ID`, `ID_MODEL_ID`, `ID_SERIAL_SHORT`: absent when udevd has not tagged the device.
    public var vendor: String?
    public var model: String?
    public var serial: String?
}

/// Owner of one libudev context. Not `Sendable`: libudev contexts are not thread-safe.
public final class Udev {
    private let handle: OpaquePointer

    public init() throws(UdevError) {
        guard let h = udev_new() else { throw UdevError(function: "udev_new") }
        handle = h
    }

    deinit { udev_unref(handle) }

    /// Every tty device with a device node, with its USB ids where udev knows them.
    public func serialDevices() throws(UdevError) -> [SerialDevice] {
        guard let enumerate = udev_enumerate_new(handle) else { throw UdevError(function: "udev_enumerate_new") }
        defer { udev_enumerate_unref(enumerate) }
        guard udev_enumerate_add_match_subsystem(enumerate, "tty") >= 0, udev_enumerate_scan_devices(enumerate) >= 0 else {
            throw UdevError(function: "udev_enumerate_scan_devices")
        }
        var devices: [SerialDevice] = []
        var entry = udev_enumerate_get_list_entry(enumerate)
        while let e = entry {
            defer { entry = udev_list_entry_get_next(e) }
            guard let syspath = udev_list_entry_get_name(e), let device = udev_device_new_from_syspath(handle, syspath) else { continue }
            defer { udev_device_unref(device) }
            // Virtual consoles have no parent device; real ports (USB, platform UARTs) do.
            guard let node = udev_device_get_devnode(device), udev_device_get_parent(device) != nil else { continue }
            func property(_ name: String) -> String? { udev_device_get_property_value(device, name).map { String(cString: $0) } }
            // Without udevd (containers) the ID_* properties are missing; the USB device's sysfs
            // attributes say the same thing.
            let usb = udev_device_get_parent_with_subsystem_devtype(device, "usb", "usb_device")
            func attribute(_ name: String) -> String? { usb.flatMap { udev_device_get_sysattr_value($0, name) }.map { String(cString: $0) } }
            devices.append(SerialDevice(
                devnode: String(cString: node), vendor: property("ID_VENDOR_ID") ?? attribute("idVendor"),
                model: property("ID_MODEL_ID") ?? attribute("idProduct"), serial: property("ID_SERIAL_SHORT") ?? attribute("serial")))
        }
        return devices.sorted { $0.devnode < $1.devnode }
    }
}

public struct UdevError: Error, Sendable, CustomStringConvertible {
    public var function: String
    public var description: String { "\(function) failed; is /sys mounted and libudev1 installed?" }
}

/// Wakes the receiver loop when a tty appears or goes: libudev's netlink monitor when udevd
/// runs; nil otherwise (containers), and the loop re-scans on a timer instead.
public final class HotplugMonitor {
    private let udev: OpaquePointer
    private let monitor: OpaquePointer
    public let fd: Int32

    public init?() {
        // udevd's control socket: without udevd no "udev" netlink events are ever sent.
        guard access("/run/udev/control", F_OK) == 0, let u = udev_new() else { return nil }
        guard let m = udev_monitor_new_from_netlink(u, "udev") else { udev_unref(u); return nil }
        udev_monitor_filter_add_match_subsystem_devtype(m, "tty", nil)
        guard udev_monitor_enable_receiving(m) >= 0 else { udev_monitor_unref(m); udev_unref(u); return nil }
        udev = u
        monitor = m
        fd = udev_monitor_get_fd(m)
    }

    deinit {
        udev_monitor_unref(monitor)
        udev_unref(udev)
    }

    /// Reads the pending events; the caller re-resolves its receiver either way.
    public func drain() {
        while let device = udev_monitor_receive_device(monitor) { udev_device_unref(device) }
    }
}
