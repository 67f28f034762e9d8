/* pjproject compile-time limits for a call-center worker.
 * The upstream defaults (PJSUA_MAX_CALLS 4, 32 players, select() with 64 handles)
 * are for a desktop softphone; these were measured to carry 800 calls with media
 * in one process (../shared/PJSIP.md). Changing this file changes the wheel's cache key. */
#define PJSUA_MAX_CALLS            1024
#define PJSUA_MAX_PLAYERS          2048
#define PJSUA_MAX_RECORDERS        1024
/* A call holds a conference port for its stream and one for its prompt; a port removed from the
 * bridge frees its slot only on the next clock tick, so an IVR replaying prompts on 1000 calls ran
 * past 2048 ("Unable to add file to conference bridge: PJ_ETOOMANY", issue 11). */
#define PJSUA_MAX_CONF_PORTS       4096
#define PJ_IOQUEUE_MAX_HANDLES     8192
#define PJSUA_MAX_ACC              64
#define PJSIP_MAX_TSX_COUNT        65535
#define PJSIP_MAX_DIALOG_COUNT     65535
#define PJMEDIA_HAS_VIDEO          0
#define PJMEDIA_HAS_SOUND          0
/* No sound card: the null device drives the conference clock. */
#define PJMEDIA_AUDIO_DEV_HAS_NULL_AUDIO 1
/* Security (issue 10). RTP is sent only to the address the SDP names: with switching on, a
 * stranger spraying RTP at the port range takes the call's outgoing audio (NAT is the edge's job). */
#define PJMEDIA_TRANSPORT_SWITCH_REMOTE_ADDR 0
/* Once the real peer has been heard, RTP from any other source is dropped for good (the default
 * 10 lets a sprayer sending faster than the caller inject audio and DTMF into the IVR). */
#define PJMEDIA_RTP_NAT_PROBATION_CNT      1000000000
/* A TCP connection that sends no SIP message within 10 s is closed (idle sockets held open). */
#define PJSIP_TCP_INITIAL_TIMEOUT          10
/* REFER and Replaces are refused from callers, so neither is advertised in Allow/Supported
 * (scripts/pjproject-no-transfer-advert.patch reads these). */
#define PJSIP_XFER_ADVERTISE_REFER         0
#define PJSIP_REPLACES_ADVERTISE           0
/* Callbacks from pjsip's threads queued for the loop thread (mainThreadOnly: DTMF digits from the
 * media thread); upstream throws the newest away past 1024, i.e. a loop a second late at 1000 calls
 * lost digits. scripts/pjproject-pending-jobs-cap.patch reads this. */
#define PJSUA2_MAX_PENDING_JOBS    65536
/* RTP receive in one syscall a packet (issue 11; scripts/pjproject-epoll-lazy-read.patch): bare epoll
 * (the SIP ioqueue is polled only by the loop thread, the media one only by pjmedia's one worker
 * thread, so EPOLLEXCLUSIVE/ONESHOT buy nothing and cost epoll_ctl() pairs per packet), EPOLLIN left
 * armed between reads, and the next RTP read posted without an immediate recvfrom() try. */
#define PJ_IOQUEUE_DEFAULT_EPOLL_FLAGS      0
#define PJ_IOQUEUE_EPOLL_LAZY_READ_DISARM   1
#define PJMEDIA_TRANSPORT_UDP_RECV_FLAGS    PJ_IOQUEUE_ALWAYS_ASYNC
