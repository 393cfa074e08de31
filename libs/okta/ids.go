package okta

// idsOf returns the "id" of each object of a JSON array of objects,
// decoded as []wireID: the decoder passes over the other members of each
// object without building them, which is most of the cost of reading a
// large org's group members.
func idsOf(data []byte) ([]string, error) {
	page, err := decodeJSON[[]wireID](data)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(page))
	for i, w := range page {
		ids[i] = w.ID
	}
	return ids, nil
}
