//! In-band event messages: the BMC's events as the kernel's IPMI driver hands them to a
//! user of `/dev/ipmi0` that asked for them ("gets events" mode).
//!
//! A BMC puts every event its event receiver takes (a PSU failing, redundancy lost, a fan
//! crossing a threshold) into the SEL *and*, when the event message buffer is enabled in
//! its global enables (IPMI 2.0 §22.1, bit 2), into the event message buffer, then raises
//! the system interface's attention ("event message buffer full", §22.4 flags). The kernel
//! reads it with Read Event Message Buffer (§22.8; 16 bytes in the SEL record layout of
//! §32.1) and queues it to every user in gets-events mode. ipmi-rs 0.6 has no API for
//! that, so a second file descriptor of the device is opened here for events alone
//! (ipmi-rs's request/response descriptor never sees one): `IPMICTL_SET_GETS_EVENTS_CMD`,
//! then `poll` for readability and `IPMICTL_RECEIVE_MSG_TRUNC` until the queue is empty.
//!
//! The kernel's `ipmi_si` checks the event message buffer bit when it starts
//! (`try_enable_event_buffer` in drivers/char/ipmi/ipmi_si_intf.c: Get BMC Global Enables,
//! Set BMC Global Enables with the bit added where it is off) and, once it has a buffer,
//! reads it about once a second while a user wants events, or at once on the attention.
//! [`ensure_event_buffer`] checks the bit again from user space (another driver, or a BMC
//! reset since) and sets it only where it is off, keeping the other bits.
//!
//! The parser ([`EventMessage::parse`]) is a pure function on bytes; the I/O is in
//! [`EventDevice`].

use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::sdr::SdrError;
use super::sel::SelEntry;
use super::session::{GetBmcGlobalEnables, RequestError, Session, SetBmcGlobalEnables};

/// `recv_type` of an event message (include/uapi/linux/ipmi.h, `IPMI_ASYNC_EVENT_RECV_TYPE`).
pub const ASYNC_EVENT_RECV_TYPE: i32 = 2;
/// Get BMC Global Enables bit 2: event message buffer enabled (IPMI 2.0 §22.1).
pub const EVENT_MESSAGE_BUFFER: u8 = 0x04;
/// Bytes of an event message: the SEL record layout (IPMI 2.0 §32.1).
pub const EVENT_LEN: usize = 16;

/// One event message from the event message buffer (IPMI 2.0 §22.8), laid out as a SEL
/// record (§32.1): record ID (2), record type (1), timestamp (4), generator ID (2), EvM
/// revision (1), sensor type (1), sensor number (1), event dir/type (1), event data (3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventMessage {
    /// The SEL record the BMC logged it as, when it did (0xFFFF or 0 when not).
    pub record_id: u16,
    /// 0x02 system event; 0xC0..=0xDF timestamped OEM, 0xE0..=0xFF non-timestamped OEM.
    pub record_type: u8,
    pub timestamp: u32,
    /// Generator ID: byte 1 (bits 7:1 slave address or software ID, bit 0 set = software)
    /// and byte 2 (channel in bits 7:4, LUN in bits 1:0).
    pub generator: [u8; 2],
    /// Event message format revision (0x04 for IPMI 1.5 and 2.0).
    pub evm_rev: u8,
    pub sensor_type: u8,
    pub sensor_number: u8,
    /// Assertion (`true`) or deassertion (event dir, bit 7).
    pub assertion: bool,
    /// Event/reading type code (0x01 threshold, 0x02..=0x0C generic, 0x6F sensor-specific).
    pub event_type: u8,
    /// Event data 1..3 (data 1 bits 3:0: the offset of the state that changed).
    pub data: [u8; 3],
}

impl EventMessage {
    /// Parses the message data the kernel handed over. Anything shorter than a record is
    /// an error; bytes after it are ignored.
    pub fn parse(d: &[u8]) -> Result<EventMessage, SdrError> {
        let Some(d) = d.get(..EVENT_LEN) else {
            return Err(SdrError(format!(
                "event message: {} bytes, need {EVENT_LEN}",
                d.len()
            )));
        };
        Ok(EventMessage {
            record_id: u16::from_le_bytes([d[0], d[1]]),
            record_type: d[2],
            timestamp: u32::from_le_bytes([d[3], d[4], d[5], d[6]]),
            generator: [d[7], d[8]],
            evm_rev: d[9],
            sensor_type: d[10],
            sensor_number: d[11],
            assertion: d[12] & 0x80 == 0,
            event_type: d[12] & 0x7f,
            data: [d[13], d[14], d[15]],
        })
    }

    /// A system event from a sensor (OEM records carry no sensor fields).
    pub fn is_sensor_event(&self) -> bool {
        self.record_type == 0x02
    }

    /// Whether redundancy can be concerned: a fan (0x04), power supply (0x08) or power unit
    /// (0x09) sensor, or any sensor reporting generic redundancy (event type 0x0B).
    pub fn concerns_redundancy(&self) -> bool {
        self.is_sensor_event()
            && (matches!(self.sensor_type, 0x04 | 0x08 | 0x09) || self.event_type == 0x0b)
    }

    /// The same event as the SEL follower would have read it: what a partial pass needs
    /// to find the sensor (generator, sensor number) and the state it reported.
    pub fn as_sel_entry(&self) -> SelEntry {
        SelEntry {
            record_id: self.record_id,
            record_type: self.record_type,
            timestamp: self.timestamp,
            generator: self.generator[0],
            sensor_type: self.sensor_type,
            sensor_number: self.sensor_number,
            assertion: self.assertion,
            event_type: self.event_type,
            offset: self.data[0] & 0x0f,
        }
    }
}

/// What the BMC's global enables said, and what was done about them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferState {
    /// The event message buffer bit was on already.
    Enabled,
    /// It was off and Set BMC Global Enables turned it on.
    EnabledNow,
}

/// Get BMC Global Enables; where the event message buffer bit is off, Set BMC Global
/// Enables with it added and every other bit as it was.
pub fn ensure_event_buffer(s: &mut Session) -> Result<BufferState, RequestError> {
    let enables: u8 = s.request(None, 0, GetBmcGlobalEnables {})?;
    if enables & EVENT_MESSAGE_BUFFER != 0 {
        return Ok(BufferState::Enabled);
    }
    s.request(
        None,
        0,
        SetBmcGlobalEnables {
            enables: with_event_buffer(enables),
        },
    )?;
    Ok(BufferState::EnabledNow)
}

/// The global enables byte with the event message buffer bit set, the others kept.
pub fn with_event_buffer(enables: u8) -> u8 {
    enables | EVENT_MESSAGE_BUFFER
}

/// The kernel's structures and ioctls of include/uapi/linux/ipmi.h.
mod sys {
    use std::ffi::{c_int, c_long, c_uchar, c_uint, c_ushort};

    /// `struct ipmi_msg`.
    #[repr(C)]
    pub struct IpmiMsg {
        pub netfn: c_uchar,
        pub cmd: c_uchar,
        pub data_len: c_ushort,
        pub data: *mut c_uchar,
    }

    /// `struct ipmi_recv`.
    #[repr(C)]
    pub struct IpmiRecv {
        pub recv_type: c_int,
        pub addr: *mut c_uchar,
        pub addr_len: c_uint,
        pub msgid: c_long,
        pub msg: IpmiMsg,
    }

    /// `sizeof(struct ipmi_addr)`: int addr_type, short channel, char data[32].
    pub const IPMI_ADDR_SIZE: usize = 40;

    // #define IPMICTL_RECEIVE_MSG_TRUNC _IOWR(IPMI_IOC_MAGIC, 11, struct ipmi_recv)
    nix::ioctl_readwrite!(receive_msg_trunc, b'i', 11, IpmiRecv);
    // #define IPMICTL_SET_GETS_EVENTS_CMD _IOR(IPMI_IOC_MAGIC, 16, int): the kernel names
    // it _IOR although it reads the int from user space; the number is what matters.
    nix::ioctl_read!(set_gets_events, b'i', 16, c_int);
}

/// One message taken from the device's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub recv_type: i32,
    pub netfn: u8,
    pub cmd: u8,
    pub data: Vec<u8>,
}

/// A descriptor of the IPMI device used for events only.
pub struct EventDevice {
    fd: OwnedFd,
}

impl EventDevice {
    /// Opens `path` (non-blocking) and puts this descriptor in gets-events mode.
    pub fn open(path: &Path) -> std::io::Result<EventDevice> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        let fd = OwnedFd::from(file);
        let mut on: std::ffi::c_int = 1;
        // SAFETY: `fd` is an open descriptor owned here for the whole call. The kernel's
        // IPMICTL_SET_GETS_EVENTS_CMD copies one `int` from the pointer (copy_from_user in
        // ipmi_devintf's ipmi_ioctl) and keeps no reference to it; `on` is a live, aligned
        // `c_int` borrowed mutably for the call only. A descriptor of another driver
        // answers ENOTTY, which is returned as an error.
        unsafe { sys::set_gets_events(fd.as_raw_fd(), &mut on) }.map_err(std::io::Error::from)?;
        Ok(EventDevice { fd })
    }

    /// Waits up to `timeout` for the descriptor to become readable. `Ok(false)`: nothing
    /// yet; an error or hang-up on the descriptor is an error.
    pub fn wait(&self, timeout: Duration) -> std::io::Result<bool> {
        let ts = Timespec {
            tv_sec: timeout.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: timeout.subsec_nanos().into(),
        };
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => Ok(false),
            Ok(_) => {
                let r = fds[0].revents();
                if r.intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL)
                    && !r.contains(PollFlags::IN)
                {
                    return Err(std::io::Error::other(format!(
                        "the IPMI device reports {r:?}"
                    )));
                }
                Ok(r.contains(PollFlags::IN))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Takes the next message from the queue; `Ok(None)` when it is empty. A message longer
    /// than the buffer comes back truncated (the kernel drops the rest).
    pub fn receive(&self) -> std::io::Result<Option<Received>> {
        let mut data = [0u8; 64];
        let mut addr = [0u8; sys::IPMI_ADDR_SIZE];
        let mut r = sys::IpmiRecv {
            recv_type: 0,
            addr: addr.as_mut_ptr(),
            addr_len: sys::IPMI_ADDR_SIZE as std::ffi::c_uint,
            msgid: 0,
            msg: sys::IpmiMsg {
                netfn: 0,
                cmd: 0,
                data_len: data.len() as std::ffi::c_ushort,
                data: data.as_mut_ptr(),
            },
        };
        // SAFETY: `r` is a `#[repr(C)]` copy of the kernel's `struct ipmi_recv` (same field
        // order and C types, so the same size and offsets on every ABI), exclusively
        // borrowed for the call. IPMICTL_RECEIVE_MSG_TRUNC reads it, writes at most
        // `addr_len` bytes through `addr` and at most `msg.data_len` bytes through
        // `msg.data` (it checks both lengths and returns EINVAL / truncates with EMSGSIZE
        // rather than write more), then writes the struct back. Both pointers point to the
        // local arrays `addr` and `data` of exactly those lengths, alive and not otherwise
        // borrowed until the call returns; the kernel keeps no pointer afterwards. `fd` is
        // open and owned by `self` for the whole call.
        let res = unsafe { sys::receive_msg_trunc(self.fd.as_fd().as_raw_fd(), &mut r) };
        match res {
            Ok(_) | Err(nix::errno::Errno::EMSGSIZE) => {
                let n = usize::from(r.msg.data_len).min(data.len());
                Ok(Some(Received {
                    recv_type: r.recv_type,
                    netfn: r.msg.netfn,
                    cmd: r.msg.cmd,
                    data: data[..n].to_vec(),
                }))
            }
            Err(nix::errno::Errno::EAGAIN) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipmi_rs::connection::Message;
    use proptest::prelude::*;

    /// "Power Supply #0x12 | Failure detected | Asserted" in the layout of IPMI 2.0 §32.1
    /// (the same bytes ipmi_sim logs in its SEL for `sensor_set_bit 0x20 0 0x12 1 1`, with
    /// the SEL record ID it gave the event).
    const PSU2_FAILED: [u8; 16] = [
        0x05, 0x00, 0x02, 0xb5, 0x01, 0x00, 0x00, 0x20, 0x00, 0x04, 0x08, 0x12, 0x6f, 0x01, 0xff,
        0xff,
    ];

    #[test]
    fn a_psu_failure_event_decodes() {
        let e = EventMessage::parse(&PSU2_FAILED).expect("event");
        assert_eq!(e.record_id, 5);
        assert_eq!(e.timestamp, 0x1b5);
        assert_eq!(e.generator, [0x20, 0x00]);
        assert_eq!((e.evm_rev, e.sensor_type, e.sensor_number), (4, 0x08, 0x12));
        assert!(e.assertion && e.is_sensor_event() && e.concerns_redundancy());
        assert_eq!((e.event_type, e.data), (0x6f, [0x01, 0xff, 0xff]));
        let s = e.as_sel_entry();
        assert_eq!((s.generator, s.sensor_number, s.offset), (0x20, 0x12, 1));
        assert_eq!(s.state_bit(), Some(1));
        // The SEL follower decodes the same record to the same entry.
        let mut answer = vec![0xff, 0xff];
        answer.extend_from_slice(&PSU2_FAILED);
        let (_, from_sel) = super::super::sel::parse_get_entry(&answer).expect("SEL entry");
        assert_eq!(from_sel, s);
    }

    #[test]
    fn deassertions_redundancy_and_other_sensors() {
        let mut d = PSU2_FAILED;
        d[12] = 0x80 | 0x6f; // deassertion
        let e = EventMessage::parse(&d).expect("event");
        assert!(!e.assertion && e.concerns_redundancy());

        // Redundancy lost (generic 0x0B, offset 1) on a sensor of OEM type 0xC0.
        let mut d = PSU2_FAILED;
        (d[10], d[12], d[13]) = (0xc0, 0x0b, 0x01);
        assert!(EventMessage::parse(&d)
            .expect("event")
            .concerns_redundancy());

        // Fan lower critical going low (threshold, offset 2) and a power unit AC lost.
        for (ty, ev, off) in [(0x04, 0x01, 0x02), (0x09, 0x6f, 0x04)] {
            let mut d = PSU2_FAILED;
            (d[10], d[12], d[13]) = (ty, ev, off);
            assert!(EventMessage::parse(&d)
                .expect("event")
                .concerns_redundancy());
        }

        // A temperature or a memory ECC event does not wake a pass.
        for ty in [0x01, 0x0c] {
            let mut d = PSU2_FAILED;
            d[10] = ty;
            assert!(!EventMessage::parse(&d)
                .expect("event")
                .concerns_redundancy());
        }

        // An OEM record (type 0xC1) has no sensor fields, whatever its bytes say.
        let mut d = PSU2_FAILED;
        d[2] = 0xc1;
        let e = EventMessage::parse(&d).expect("event");
        assert!(!e.is_sensor_event() && !e.concerns_redundancy());
    }

    #[test]
    fn short_messages_are_errors_and_extra_bytes_ignored() {
        assert!(EventMessage::parse(&[]).is_err());
        assert!(EventMessage::parse(&PSU2_FAILED[..15]).is_err());
        let mut long = PSU2_FAILED.to_vec();
        long.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            EventMessage::parse(&long).expect("event"),
            EventMessage::parse(&PSU2_FAILED).expect("event")
        );
    }

    #[test]
    fn global_enables_keep_their_other_bits() {
        // OEM 2 + event logging + receive message queue interrupt, buffer off.
        assert_eq!(with_event_buffer(0b1000_1001), 0b1000_1101);
        assert_eq!(with_event_buffer(0x0c), 0x0c);
        let m: Message = GetBmcGlobalEnables {}.into();
        assert_eq!((m.netfn_raw(), m.cmd(), m.data()), (0x06, 0x2f, &[][..]));
        let m: Message = SetBmcGlobalEnables { enables: 0x0d }.into();
        assert_eq!(
            (m.netfn_raw(), m.cmd(), m.data()),
            (0x06, 0x2e, &[0x0d][..])
        );
    }

    #[test]
    fn the_ioctl_numbers_are_the_kernels() {
        // _IOWR('i', 11, struct ipmi_recv) and _IOR('i', 16, int) on x86_64/aarch64:
        // dir << 30 | size << 16 | 'i' << 8 | nr.
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(std::mem::size_of::<sys::IpmiRecv>(), 48);
            let trunc: u64 = (3 << 30) | (48 << 16) | (0x69 << 8) | 11;
            assert_eq!(
                nix::request_code_readwrite!(b'i', 11, std::mem::size_of::<sys::IpmiRecv>()) as u64,
                trunc
            );
            assert_eq!(trunc, 0xc030_690b);
            assert_eq!(
                nix::request_code_read!(b'i', 16, std::mem::size_of::<std::ffi::c_int>()) as u64,
                0x8004_6910
            );
        }
    }

    #[test]
    fn a_missing_device_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(EventDevice::open(&dir.path().join("ipmi0")).is_err());
        // A file that is not the IPMI device refuses the ioctl (ENOTTY).
        let f = dir.path().join("plain");
        std::fs::write(&f, b"").expect("write");
        assert!(EventDevice::open(&f).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(d in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(e) = EventMessage::parse(&d) {
                let _ = e.concerns_redundancy();
                let _ = e.as_sel_entry().state_bit();
            }
        }
    }
}
