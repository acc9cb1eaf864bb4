package store

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// The keys of the relay's buckets, all made here. (The operators' bucket's
// are package operators' and the outbox's state bucket's package outbox's:
// each owns its bucket, see the package doc.) Keys are hashes where the
// name comes from outside (a PBX's call id, a request id, a chat export):
// bucket keys may not hold every character.

// Presence keys: a node's record, and a lease.
const (
	presenceNodePrefix  = "node."
	presenceLeasePrefix = "lease."
)

// CallKey names a call: by the PBX's id, or by the caller's number when the
// PBX sends none (retailCRM makes callExternalId optional).
func CallKey(callID, phone string) string {
	src := "id:" + callID
	if callID == "" {
		src = "phone:" + phone
	}
	h := sha256.Sum256([]byte(src))
	return "c." + hex.EncodeToString(h[:16])
}

// replySlotKey names the slot of an operator's request id, and the id's
// hash within it.
func replySlotKey(opID, requestID string) (key, idHash string) {
	h := sha256.Sum256([]byte(requestID))
	return "s." + opID + "." + strconv.Itoa(int(h[0])%replySlots), hex.EncodeToString(h[:12])
}

// uploadedKey is an external id as a bucket key: ids are the PBX's and may
// hold any character, keys may not.
func uploadedKey(externalID string) string {
	h := sha256.Sum256([]byte(externalID))
	return hex.EncodeToString(h[:16])
}

// ExportKey names a chat export by its content, so that the same export
// sent again is recognised (SaveTranscript, LoadTranscript).
func ExportKey(body []byte) string {
	h := sha256.Sum256(body)
	return "h." + hex.EncodeToString(h[:16])
}

// SubmissionKey names an operator's transcript submission by its id.
func SubmissionKey(opID, submissionID string) string {
	h := sha256.Sum256([]byte(submissionID))
	return "t." + opID + "." + hex.EncodeToString(h[:16])
}
