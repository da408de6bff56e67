/* A module for OpenIPMI's BMC simulator (ipmi_sim, Debian package openipmi), loaded with
 * `loadlib`: the simulator has no DCMI, so this answers DCMI "Get Power Reading" (group
 * extension 0xDC, command 0x02; DCMI 1.5 table 6-16) with a power that rises by 10 W at each
 * read from 250 W, so a client can tell two reads apart. Used by tests/collectors/energy/
 * ipmi_test.cc to drive FreeIPMI's LAN calls end to end. */
#include <OpenIPMI/ipmi_auth.h>
#include <OpenIPMI/lanserv.h>
#include <OpenIPMI/mcserv.h>
#include <OpenIPMI/msg.h>
#include <OpenIPMI/serv.h>
#include <stdio.h>

static unsigned int watts = 240;

static void get_power_reading(lmc_data_t* mc, msg_t* msg, unsigned char* rdata,
                              unsigned int* rdata_len, void* cb_data) {
  (void)cb_data;
  if (msg->cmd != 0x02) {
    handle_invalid_cmd(mc, rdata, rdata_len);
    return;
  }
  watts += 10;
  for (int i = 0; i < 19; ++i) rdata[i] = 0;
  rdata[1] = 0xdc;         /* the group extension */
  rdata[2] = watts & 0xff; /* current, minimum, maximum, average power: little endian */
  rdata[3] = watts >> 8;
  rdata[4] = 100;
  rdata[6] = 0x2c;
  rdata[7] = 0x01;
  rdata[8] = 200;
  rdata[14] = 0xe8; /* statistics period 1000 ms */
  rdata[15] = 0x03;
  rdata[18] = 0x40; /* power measurement active */
  *rdata_len = 19;
}

/* DCMI gives Get Power Reading to the User privilege; the simulator's own table asks more of a
 * command it does not know. */
static int permitted(unsigned char priv, unsigned char netfn, unsigned char cmd) {
  if (netfn == 0x2c && cmd == 0x02 && priv >= IPMI_PRIVILEGE_USER) return IPMI_PRIV_PERMITTED;
  return IPMI_PRIV_INVALID;
}

int ipmi_sim_module_print_version(sys_data_t* sys, char* options) {
  (void)sys;
  (void)options;
  printf("wattprobe dcmi_power 1\n");
  return 0;
}

int ipmi_sim_module_init(sys_data_t* sys, char* options) {
  (void)sys;
  (void)options;
  ipmi_emu_register_group_extension_handler(0xdc, get_power_reading, NULL);
  return 0;
}

int ipmi_sim_module_post_init(sys_data_t* sys) {
  channel_t** chans = sys->mc_get_channelset(sys->ipmb_addrs[sys->bmc_ipmb]);
  for (int i = 0; i < IPMI_MAX_CHANNELS; ++i)
    if (chans[i]) chans[i]->oem.oem_check_permitted = permitted;
  return 0;
}
