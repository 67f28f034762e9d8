/* pjproject compile-time limits for a call-center worker.
 * The upstream defaults (PJSUA_MAX_CALLS 4, 32 players, select() with 64 handles)
 * are for a desktop softphone; these were measured to carry 800 calls with media
 * in one process (../shared/PJSIP.md). Changing this file changes the wheel's cache key. */
#define PJSUA_MAX_CALLS            1024
#define PJSUA_MAX_PLAYERS          2048
#define PJSUA_MAX_RECORDERS        1024
#define PJSUA_MAX_CONF_PORTS       2048
#define PJ_IOQUEUE_MAX_HANDLES     8192
#define PJSUA_MAX_ACC              64
#define PJSIP_MAX_TSX_COUNT        65535
#define PJSIP_MAX_DIALOG_COUNT     65535
#define PJMEDIA_HAS_VIDEO          0
#define PJMEDIA_HAS_SOUND          0
/* No sound card: the null device drives the conference clock. */
#define PJMEDIA_AUDIO_DEV_HAS_NULL_AUDIO 1
