// stl: C++ containers churning, single thread: a std::map<std::string,
// std::string> over a key space of 40 000 keys of 20-40 characters (all
// longer than the 15 characters std::string keeps inline, so every key is
// a heap allocation), values of 16-200 characters. Each step builds a
// key (a temporary string), then inserts it or replaces its value (the
// new value is built by appending pieces: string growth), erases one, or
// looks one up; every 64 steps a std::vector<std::string> of 8-256
// strings is built by push_back (vector growth), sorted and dropped.
// Map nodes (~100 bytes), strings of 21-201 bytes and vector buffers of
// 256 B-8 KiB come and go in a scattered order, through operator new and
// delete.
#include "common.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

static std::string make_key(uint64_t id) {
    uint64_t s = id * 0x2545f4914f6cdd1dULL;
    size_t len = 20 + (size_t)(rng_next(&s) % 21);
    std::string k = "key-";
    while (k.size() < len) k.push_back((char)('a' + rng_next(&s) % 26));
    return k;
}

int main(int argc, char **argv) {
    double scale = scale_arg(argc, argv);
    long steps = scaled(700000, scale);
    uint64_t rng = 0x571c0000;
    uint64_t h = 0;
    double t0 = now_secs();
    {
        std::map<std::string, std::string> m;
        for (long s = 0; s < steps; s++) {
            uint64_t r = rng_next(&rng);
            std::string key = make_key(r % 40000);
            switch ((r >> 20) % 8) {
            case 0:
            case 1:
            case 2: {
                std::string v;
                size_t len = 16 + (size_t)((r >> 32) % 185);
                while (v.size() < len) v.append(key, 0, std::min(key.size(), len - v.size()));
                m[key] = std::move(v);
                break;
            }
            case 3:
                h = mix(h, m.erase(key));
                break;
            default: {
                auto it = m.find(key);
                h = mix(h, it == m.end() ? 0 : it->second.size() + (unsigned char)it->second[3]);
                break;
            }
            }
            if ((s & 63) == 0) {
                std::vector<std::string> v;
                size_t n = 8 + (size_t)((r >> 40) % 249);
                for (size_t i = 0; i < n; i++) v.push_back(make_key(r + i));
                std::sort(v.begin(), v.end());
                h = mix(h, v.front().size() + v.back()[5]);
            }
        }
        h = mix(h, m.size());
        for (auto &kv : m) h = mix(h, kv.first.size() * 1000 + kv.second.size());
    }
    report("stl", scale, h, now_secs() - t0);
    return 0;
}
