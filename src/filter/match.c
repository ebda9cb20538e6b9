/* SPDX-License-Identifier: MIT */
/*
 * filter_match(): runs a program on a stored frame as the kernel would have
 * run it on the live packet. On receive the kernel moves an outer 802.1Q or
 * 802.1ad tag out of the frame into metadata (skb_vlan_untag()) before packet
 * sockets see it; stored frames have their tag back inline. The tag is hidden
 * from the program by running it over two pieces of the frame (before and
 * after the tag), so nothing is copied or allocated.
 */
#include "filter/filter.h"

#include <linux/if_ether.h>
#include <linux/if_packet.h>

#include "filter/cbpf-split.h"
#include "pcap/record.h"

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* eth_type_trans(): values below 1536 are 802.3 lengths, not types. */
static uint16_t eth_protocol(uint16_t type, const uint8_t *payload, uint32_t n)
{
	if (type >= ETH_P_802_3_MIN)
		return type;
	if (n >= 2 && payload[0] == 0xff && payload[1] == 0xff)
		return ETH_P_802_3;
	return ETH_P_802_2;
}

uint32_t filter_match(const CbpfProgram *p, uint32_t linktype, const uint8_t *data, uint32_t caplen, uint32_t origlen)
{
	CbpfPacket pkt = {
		.data = data,
		.caplen = caplen,
		.wirelen = origlen,
		.pkttype = PACKET_HOST,
	};

	switch (linktype) {
	case LINKTYPE_ETHERNET:
		if (caplen < ETH_HLEN)
			break;
		pkt.protocol = be16(data + 12);
		if ((pkt.protocol == ETH_P_8021Q || pkt.protocol == ETH_P_8021AD) && caplen >= ETH_HLEN + 4) {
			pkt.vlan_present = true;
			pkt.vlan_tpid = pkt.protocol;
			pkt.vlan_tci = be16(data + 14);
			pkt.caplen = 12;
			pkt.wirelen = origlen >= 4 ? origlen - 4 : 0;
			pkt.protocol = eth_protocol(be16(data + 16), data + 18, caplen - 18);
			return cbpf_run_split(p, &pkt, data + 16, caplen - 16);
		}
		pkt.protocol = eth_protocol(pkt.protocol, data + ETH_HLEN, caplen - ETH_HLEN);
		break;
	case LINKTYPE_RAW:
		if (caplen >= 1)
			pkt.protocol = (data[0] >> 4) == 6 ? ETH_P_IPV6 : ETH_P_IP;
		break;
	case LINKTYPE_IPV4:
		pkt.protocol = ETH_P_IP;
		break;
	case LINKTYPE_IPV6:
		pkt.protocol = ETH_P_IPV6;
		break;
	case LINKTYPE_LINUX_SLL:
		if (caplen >= 16)
			pkt.protocol = be16(data + 14);
		break;
	case LINKTYPE_LINUX_SLL2:
		if (caplen >= 2)
			pkt.protocol = be16(data);
		break;
	default:
		break;
	}
	return cbpf_run_split(p, &pkt, NULL, 0);
}
